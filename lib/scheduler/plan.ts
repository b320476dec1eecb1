/**
 * From requested `.drv` paths to the scheduler's goal graph (Nix's `DerivationGoal::haveDerivation`
 * deciding what to build): each derivation is read from the store once, a derivation whose wanted
 * outputs are all valid is `valid` and its inputs are not followed, the others follow their input
 * derivations with the outputs they name.
 *
 * Partly valid derivations: the builder always produces every output; kiln then registers the
 * outputs that are not valid yet and keeps (does not replace) the valid ones, as Nix 2.8 does.
 */

import { type Derivation, derivationType, parseDerivation } from "../derivation/mod.ts";
import { decodeNixString, parseStorePath } from "../hashing/mod.ts";
import { hashPath, type LocalStore, pathExists } from "../store/mod.ts";
import type { GoalNode } from "./_graph.ts";

/** One requested derivation: `outputs` undefined means all of them (`^*`, or no `^`). */
export interface BuildTarget {
  drvPath: string;
  outputs?: readonly string[];
}

/** What the plan knows about one derivation of the run. */
export interface PlannedDerivation {
  path: string;
  drv: Derivation;
  /** Output name -> output path, for every output. */
  outputPaths: Map<string, string>;
  /** Output names some requester needs (a target's, or those its dependents name). */
  wanted: Set<string>;
  /** Outputs valid (and, with `repair`, intact) when planned. */
  valid: Set<string>;
  /** Valid outputs whose contents no longer match their NAR hash (`repair` only). */
  corrupt: Set<string>;
  /** Rebuild although valid, comparing the result (`--check`; targets only). */
  check: boolean;
  /** Some requester wants every output (a target without `^`, or `^*`). */
  allOutputs: boolean;
}

/** The goal graph of a run and the derivations behind it. */
export interface BuildPlan {
  graph: Map<string, GoalNode>;
  derivations: Map<string, PlannedDerivation>;
  /** The targets' `.drv` paths, in request order, without duplicates. */
  targets: string[];
  /**
   * What to pass to `runGoals`: the targets, then every derivation to build (with `repair`, a
   * corrupt input of a valid derivation is not reachable from the targets through the graph).
   */
  roots: string[];
}

export interface PlanOptions {
  /** Derivations already parsed (e.g. just added from stdin), by `.drv` path: not read again. */
  known?: ReadonlyMap<string, Derivation>;
  /** `--check`: rebuild the targets (whose outputs must all be valid) and compare. */
  check?: boolean;
  /** `--repair`: follow every input and rebuild outputs whose contents are corrupt. */
  repair?: boolean;
}

/** Reads the `.drv` at `path` from the store; throws naming it when it is not valid. */
export function readDerivation(store: LocalStore, path: string): Derivation {
  const { name } = parseStorePath(store.storeDir, path);
  if (!name.endsWith(".drv")) throw new TypeError(`Path '${path}' is not a derivation (.drv)`);
  if (!store.isValidPath(path)) throw new TypeError(`Path '${path}' is not valid in the store`);
  const text = decodeNixString(Deno.readFileSync(store.physicalPath(path)));
  return parseDerivation(text, name.slice(0, -".drv".length));
}

/** The output paths of `drv`; throws for outputs whose path is not known before building. */
export function derivationOutputPaths(drvPath: string, drv: Derivation): Map<string, string> {
  const type = derivationType(drv);
  const paths = new Map<string, string>();
  for (const [name, output] of drv.outputs) {
    if (output.kind !== "inputAddressed" && output.kind !== "fixed") {
      throw new TypeError(
        `Derivation '${drvPath}' has ${type} outputs (content-addressed or impure derivations), which kiln cannot build yet`,
      );
    }
    paths.set(name, output.path);
  }
  return paths;
}

/**
 * Plans the build of `targets`: reads each derivation and, where it must be built, its input
 * derivations. Throws (TypeError) for a missing or unreadable derivation, an unknown output name,
 * an input source that is not valid, or unsupported output kinds.
 */
export function planBuild(
  store: LocalStore,
  targets: readonly BuildTarget[],
  options: PlanOptions = {},
): BuildPlan {
  const derivations = new Map<string, PlannedDerivation>();
  const expanded = new Set<string>();
  const verified = new Map<string, boolean>();
  const intact = (path: string): boolean => {
    let ok = verified.get(path);
    if (ok === undefined) {
      const info = store.queryPathInfo(path)!;
      const physical = store.physicalPath(path);
      // A valid output missing on disk (`kiln store verify` finds such) is as corrupt.
      ok = pathExists(physical) && hashPath(physical).hash.equals(info.narHash);
      verified.set(path, ok);
    }
    return ok;
  };
  const load = (path: string): PlannedDerivation => {
    let planned = derivations.get(path);
    if (planned !== undefined) return planned;
    const drv = options.known?.get(path) ?? readDerivation(store, path);
    const outputPaths = derivationOutputPaths(path, drv);
    const valid = new Set<string>();
    const corrupt = new Set<string>();
    for (const [name, out] of outputPaths) {
      if (!store.isValidPath(out)) continue;
      if (options.repair && !intact(out)) corrupt.add(name);
      else valid.add(name);
    }
    planned = {
      path,
      drv,
      outputPaths,
      wanted: new Set(),
      valid,
      corrupt,
      check: false,
      allOutputs: false,
    };
    derivations.set(path, planned);
    return planned;
  };

  const queue: { path: string; outputs: readonly string[] | undefined }[] = [];
  const order = new Set<string>();
  for (const target of targets) {
    order.add(target.drvPath);
    queue.push({ path: target.drvPath, outputs: target.outputs });
    if (options.check) load(target.drvPath).check = true;
  }
  while (queue.length > 0) {
    const { path, outputs } = queue.pop()!;
    const planned = load(path);
    if (outputs === undefined) planned.allOutputs = true;
    for (const name of outputs ?? planned.outputPaths.keys()) {
      if (!planned.outputPaths.has(name)) {
        throw new TypeError(`Derivation '${path}' does not have an output named '${name}'`);
      }
      planned.wanted.add(name);
    }
    if (expanded.has(path) || (!needsBuild(planned) && !options.repair)) continue;
    expanded.add(path);
    if (planned.check) {
      const missing = [...planned.outputPaths.keys()].filter((o) => !planned.valid.has(o));
      if (missing.length > 0) {
        throw new TypeError(
          `Some outputs of '${path}' are not valid, so checking is not possible`,
        );
      }
    }
    for (const src of planned.drv.inputSrcs) {
      if (!store.isValidPath(src)) {
        throw new TypeError(
          `Path '${src}' is required by '${path}', but it is not valid and kiln cannot substitute it`,
        );
      }
    }
    for (const [input, names] of planned.drv.inputDrvs) {
      queue.push({ path: input, outputs: names });
    }
  }

  const graph = new Map<string, GoalNode>();
  for (const planned of derivations.values()) {
    const build = needsBuild(planned);
    graph.set(planned.path, {
      kind: "build",
      dependencies: expanded.has(planned.path) ? [...planned.drv.inputDrvs.keys()] : [],
      valid: !build,
      outputs: Object.fromEntries(
        [...planned.wanted].sort().map((o) => [o, planned.outputPaths.get(o)!]),
      ),
    });
  }
  const roots = [...order];
  for (const [path, node] of graph) if (!node.valid) roots.push(path);
  return { graph, derivations, targets: [...order], roots };
}

/** Whether the derivation's goal must run (rather than being already valid). */
function needsBuild(planned: PlannedDerivation): boolean {
  if (planned.check) return true;
  for (const name of planned.wanted) if (!planned.valid.has(name)) return true;
  return false;
}
