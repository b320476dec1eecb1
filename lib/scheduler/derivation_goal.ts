/**
 * Building one derivation, as Nix 2.8's `DerivationGoal` / `LocalDerivationGoal` do once the
 * inputs are there: take the output locks, re-check validity (another process may have built it),
 * clear stale files, run the builder (`rounds` times, or once more for `--check`), examine the
 * outputs and register them in one transaction, deriver = the `.drv`, ultimate.
 *
 * An unsandboxed build with one round lets its dependents start once its outputs are final on
 * disk (canonicalised), before they are hashed, checked and registered (see `BuildHooks`); such a
 * dependent runs its builder while that happens, and reads the store's record of its inputs
 * (closure, reference candidates) only afterwards. Such a build is also prepared (its build dir
 * taken, its environment computed) while the build it waits for runs: its way from that build's
 * end to its own builder is then the lock, the validity check and the spawn.
 *
 * Without the sandbox the builder writes the outputs at their real place, which needs the store's
 * physical root to be `/` and every output path to be free: a rebuild of a valid output (`--check`,
 * `--repair`, a partly valid derivation) needs the sandbox, whose outputs land in its own store
 * directory and are moved into place afterwards.
 */

import { basename, join } from "node:path";
import { derivationType } from "../derivation/mod.ts";
import { makeFixedOutputPath, outputPathName, renderContentAddress } from "../hashing/mod.ts";
import { LOG_FILE_EXTENSION } from "../sandbox/mod.ts";
import { pathExists, type PathInfo, removeTree } from "../store/mod.ts";
import type { BuildOutcome, FailureOutcome } from "./build_result.ts";
import type { BuildPlan, PlannedDerivation } from "./plan.ts";
import type { BuildFunction, BuildHooks } from "./goal_function.ts";
import {
  outputLocation,
  type PreparedRound,
  prepareRound,
  removeDir,
  removeRound,
  type Round,
  type RoundContext,
  type RoundJob,
  runRound,
} from "./_build_round.ts";
import { ClosureCache } from "./_closure.ts";
import { errorMessage } from "./_outcome.ts";
import { builderFailure, goalName } from "./_failures.ts";
import {
  canonicaliseTree,
  checkOutputs,
  fixedOutputMismatch,
  referenceCandidates,
  type ScannedOutput,
  scanOutput,
} from "./_outputs.ts";

export type { BuildSettings } from "./_build_round.ts";

/** Everything the build function of a run needs. */
export interface DerivationGoalContext extends RoundContext {
  plan: BuildPlan;
  /** Build logs go to `<logDir>/<2 chars>/<rest of the drv base name>.gz`. */
  logDir: string;
  /** Notes for the user (`keeping build directory ...`). */
  onNote?: (message: string) => void;
}

/** The directory of build logs in a store's state dir (Nix: `/nix/var/log/nix/drvs`). */
export function buildLogDir(stateDir: string): string {
  return join(stateDir, "log", "drvs");
}

/** Where the log of `drvPath` is kept under `logDir`. */
export function buildLogPath(logDir: string, drvPath: string): string {
  const base = basename(drvPath);
  return join(logDir, base.slice(0, 2), base.slice(2) + LOG_FILE_EXTENSION);
}

/** The scheduler's functions for the derivations of `context.plan` (see `WorkerOptions`). */
export interface DerivationGoals {
  build: BuildFunction;
  /** Gets an unsandboxed build's round ready (in the next macrotask) while it waits. */
  prepare(drvPath: string): void;
  /** Gives back what was prepared for builds that never started; call once the run has ended. */
  releasePrepared(): Promise<void>;
}

/** The build and prepare functions for the derivations of `context.plan`. */
export function makeDerivationGoals(context: DerivationGoalContext): DerivationGoals {
  const run: RunState = {
    ...context,
    closures: new ClosureCache(context.store),
    prepared: new Map(),
  };
  let released = false;
  const started = new Set<string>();
  const planned = (drvPath: string) => {
    const found = context.plan.derivations.get(drvPath);
    if (found === undefined) throw new Error(`Internal error: '${drvPath}' is not planned`);
    return found;
  };
  return {
    build(drvPath, signal, hooks) {
      started.add(drvPath);
      const derivation = planned(drvPath);
      const outputs = [...derivation.outputPaths.values()];
      return context.store.withPathLock(outputs, async () => {
        const prepared = { round: await run.prepared.get(drvPath)?.catch(() => undefined) };
        run.prepared.delete(drvPath);
        try {
          return await buildLocked(derivation, signal, hooks, run, prepared);
        } finally {
          if (prepared.round) context.buildDirs.give(prepared.round.buildDir); // not used
        }
      });
    },
    prepare(drvPath) {
      const derivation = planned(drvPath);
      const { sandboxed, fixedOutput } = buildMode(derivation, context.settings);
      if (sandboxed || needsInputsFirst(derivation)) return;
      // After the current microtasks: the build that is starting reaches its builder first.
      setImmediate(() => {
        if (released || started.has(drvPath)) return;
        const job = { ...derivation, fixedOutput, sandboxed };
        const prepared = prepareRound(job, context);
        prepared.catch(() => {}); // taken by the build (or released), which sees the error
        run.prepared.set(drvPath, prepared);
      });
    },
    async releasePrepared() {
      released = true;
      for (const prepared of run.prepared.values()) {
        await prepared.then((p) => context.buildDirs.give(p.buildDir), () => {});
      }
      run.prepared.clear();
    },
  };
}

/** The context plus what the builds of one run share. */
interface RunState extends DerivationGoalContext {
  closures: ClosureCache;
  /** Rounds prepared for builds not started yet (see `DerivationGoals.prepare`). */
  prepared: Map<string, Promise<PreparedRound>>;
}

/** Whether `planned` builds in the sandbox, and whether it is a fixed-output derivation. */
function buildMode(
  planned: PlannedDerivation,
  settings: DerivationGoalContext["settings"],
): { sandboxed: boolean; fixedOutput: boolean } {
  const fixedOutput = derivationType(planned.drv) === "fixed";
  const sandboxed = settings.sandbox === "on" ||
    (settings.sandbox === "relaxed" && !fixedOutput && planned.drv.env.get("__noChroot") !== "1");
  return { sandboxed, fixedOutput };
}

/** Whether the builder's environment needs the inputs' registrations (exported reference graphs). */
function needsInputsFirst(planned: PlannedDerivation): boolean {
  return planned.drv.env.has("exportReferencesGraph") || planned.drv.env.has("__json");
}

/** A build's outputs after its first round, before they are registered. */
interface Staged {
  scanned: Map<string, ScannedOutput>;
  /** Output name -> where it is now. */
  locations: Map<string, string>;
}

function failure(reason: FailureOutcome["reason"], message: string): FailureOutcome {
  return { status: "failed", reason, message };
}

/** Builds `planned` under its output locks, from its `prepared` round where there is one. */
async function buildLocked(
  planned: PlannedDerivation,
  signal: AbortSignal,
  hooks: BuildHooks,
  context: RunState,
  prepared: { round?: PreparedRound },
): Promise<BuildOutcome> {
  const { store, settings } = context;
  const { path: drvPath, drv, outputPaths } = planned;
  const wantedOutputs = () =>
    Object.fromEntries([...planned.wanted].sort().map((o) => [o, outputPaths.get(o)!]));
  const validNow = new Set<string>();
  const invalid: string[] = [];
  for (const [name, path] of outputPaths) {
    if (!store.isValidPath(path)) invalid.push(path);
    else if (!planned.corrupt.has(name)) validNow.add(name);
  }
  if (!planned.check && [...planned.wanted].every((o) => validNow.has(o))) {
    return { status: "already-valid", outputs: wantedOutputs() };
  }
  const { sandboxed, fixedOutput } = buildMode(planned, settings);
  if (!sandboxed) {
    const problem = unsandboxedProblem(planned, validNow, context.storeRoot);
    if (problem !== undefined) return failure("spawn-error", problem);
  }
  for (const path of invalid) removeTree(store.physicalPath(path));
  const cancelled = () => failure("cancelled", `build of '${drvPath}' was cancelled`);
  // The input closure and the reference candidates, once the inputs are registered (commonly
  // while the builder runs): only the sandbox and the exported reference graphs need them first.
  const inputs = hooks.dependenciesRegistered.then((ok) => {
    if (!ok) return undefined;
    const paths = inputClosure(planned, context);
    const candidates = referenceCandidates(store.storeDir, [...paths, ...outputPaths.values()]);
    return { paths, candidates };
  });
  inputs.catch(() => {}); // awaited later (a bad input then fails the build), never unhandled
  const inputsFirst = sandboxed || needsInputsFirst(planned);
  if (inputsFirst) hooks.underway();
  const inputPaths = inputsFirst ? (await inputs)?.paths : [];
  if (inputPaths === undefined) return cancelled();
  const job: RoundJob = {
    drvPath,
    drv,
    outputPaths,
    fixedOutput,
    sandboxed,
    inputPaths: sandboxed ? sandboxStorePaths(inputPaths, context) : [],
    logPath: buildLogPath(context.logDir, drvPath),
    signal,
    onSpawned: hooks.underway,
  };
  // Outputs examined: with --check all of them, else those to register.
  const examined = [...outputPaths.keys()].filter((o) => planned.check || !validNow.has(o));
  const rounds = planned.check ? 1 : Math.max(1, settings.rounds);
  // Dependents may start once the outputs are in place for good.
  const releaseEarly = !sandboxed && rounds === 1 && !planned.check;
  let staged: Staged | undefined;
  const leftovers: string[] = [];
  let firstRoot: string | undefined;
  try {
    for (let n = 1; n <= rounds; n++) {
      let round: Round;
      const ready = prepared.round;
      prepared.round = undefined; // the round owns it now
      try {
        round = await runRound(job, context, ready);
      } catch (error) {
        if (signal.aborted) return cancelled();
        return failure(
          "spawn-error",
          `Cannot start the builder of '${drvPath}': ${errorMessage(error)}`,
        );
      }
      let succeeded = false;
      try {
        const outcome = round.result.outcome;
        if (outcome.kind !== "exited" || outcome.code !== 0) {
          return builderFailure(round.result, {
            drvPath,
            goalName: goalName(drvPath, planned.allOutputs ? "*" : [...planned.wanted].join(",")),
            fixedOutput,
            timeout: settings.timeout,
            maxSilentTime: settings.maxSilentTime,
            maxLogSize: settings.maxLogSize,
          });
        }
        const { candidates } = (await inputs) ?? {};
        if (candidates === undefined) return cancelled();
        const locations = outputLocations(planned, round, examined, context);
        if (typeof locations === "string") return failure("output-rejected", locations);
        // The dependents just started reach their builders first; this build's checks then
        // overlap with them.
        if (releaseEarly) await hooks.outputsReady();
        const collected = collect(planned, locations, candidates);
        if ("status" in collected) return collected;
        const problem = n === 1
          ? await firstRoundProblem(planned, collected, context)
          : compareRounds(drvPath, staged!.scanned, collected.scanned, "differs");
        if (problem !== undefined) return problem;
        if (n === 1) {
          staged = collected;
          if (!sandboxed && rounds > 1) stageAside(staged, context, leftovers);
        }
        succeeded = true;
      } finally {
        // The first round's sandbox holds the outputs until they are registered.
        const keepRoot = succeeded && n === 1 && round.rootDir !== undefined;
        if (keepRoot) firstRoot = round.rootDir;
        finishRound(planned, keepRoot ? { ...round, rootDir: undefined } : round, context, {
          failed: !succeeded,
          validNow,
        });
      }
    }
    if (!planned.check) {
      for (const info of register(planned, staged!, validNow, context)) {
        context.closures.remember(info.path, info.references);
      }
    }
    return { status: "built", outputs: wantedOutputs(), timesBuilt: rounds };
  } finally {
    for (const path of leftovers) removeDir(path, context);
    if (firstRoot !== undefined) removeRound({ rootDir: firstRoot }, context);
  }
}

/** Why the derivation cannot be built without the sandbox here, or undefined. */
function unsandboxedProblem(
  planned: PlannedDerivation,
  validNow: Set<string>,
  storeRoot: string,
): string | undefined {
  const drvPath = planned.path;
  if (storeRoot !== "/") {
    return `Cannot build '${drvPath}' without the sandbox: the store lives under '${storeRoot}', ` +
      `so the builder would not find its inputs at their store paths (use the sandbox, or store root '/')`;
  }
  if (pathExists("/homeless-shelter")) {
    return "home directory '/homeless-shelter' exists; please remove it to assure purity of builds without sandboxing";
  }
  for (const [name, path] of planned.outputPaths) {
    if (validNow.has(name) || planned.corrupt.has(name)) {
      return `Cannot rebuild '${drvPath}' without the sandbox: its output '${path}' is valid ` +
        `and the builder would overwrite it (enable the sandbox for --check, --repair or partly built derivations)`;
    }
  }
  return undefined;
}

/** The input closure: input sources and the wanted outputs of input derivations, closed. */
function inputClosure(planned: PlannedDerivation, context: RunState): string[] {
  const roots = [...planned.drv.inputSrcs];
  for (const [input, names] of planned.drv.inputDrvs) {
    const paths = context.plan.derivations.get(input)!.outputPaths;
    for (const name of names) roots.push(paths.get(name)!);
  }
  return context.closures.closure(roots);
}

/**
 * What a sandbox shows of the store: the input closure, and the closures of the store paths that
 * `sandbox-paths` takes from the host (at their logical or physical place; valid ones only: Nix
 * skips the others). Those are not inputs: the output scan does not look for them.
 */
function sandboxStorePaths(inputs: string[], context: RunState): string[] {
  const { store } = context;
  const storeDir = store.storeDir + "/";
  const prefixes = [storeDir, store.physicalPath(store.storeDir) + "/"];
  const roots = [];
  for (const entry of context.settings.sandboxPaths) {
    const host = entry.replace(/\?$/, "").split("=").at(-1)!;
    const prefix = prefixes.find((p) => host.startsWith(p));
    if (prefix === undefined) continue;
    const path = storeDir + host.slice(prefix.length).split("/")[0];
    if (store.isValidPath(path)) roots.push(path);
  }
  if (roots.length === 0) return inputs;
  return [...new Set([...inputs, ...context.closures.closure(roots)])].sort();
}

/**
 * Where each examined output of a successful round is, canonicalised (final from then on); why
 * not when one is missing or holds a file a store cannot.
 */
function outputLocations(
  planned: PlannedDerivation,
  round: Round,
  examined: string[],
  context: DerivationGoalContext,
): Map<string, string> | string {
  const locations = new Map<string, string>();
  for (const name of examined) {
    const path = planned.outputPaths.get(name)!;
    const location = outputLocation(context.store, round, path);
    if (!pathExists(location)) {
      return `builder for '${planned.path}' failed to produce output path for output '${name}' at '${path}'`;
    }
    try {
      canonicaliseTree(location);
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;
      return error.message;
    }
    locations.set(name, location);
  }
  return locations;
}

/** Scans the canonicalised outputs at `locations`; a failure when one is bad. */
function collect(
  planned: PlannedDerivation,
  locations: Map<string, string>,
  candidates: Map<string, string>,
): Staged | FailureOutcome {
  const staged: Staged = { scanned: new Map(), locations };
  for (const [name, location] of locations) {
    const path = planned.outputPaths.get(name)!;
    const output = planned.drv.outputs.get(name)!;
    try {
      staged.scanned.set(
        name,
        scanOutput(location, path, {
          candidates,
          fixed: output.kind === "fixed" ? output : undefined,
        }),
      );
    } catch (error) {
      if (!(error instanceof TypeError) || error.message.startsWith("Internal error")) throw error;
      return failure("output-rejected", error.message);
    }
  }
  return staged;
}

/** After the first round: the fixed-output hash, `--check`'s comparison, the output checks. */
async function firstRoundProblem(
  planned: PlannedDerivation,
  staged: Staged,
  context: DerivationGoalContext,
): Promise<FailureOutcome | undefined> {
  const { store } = context;
  for (const [name, scanned] of staged.scanned) {
    const output = planned.drv.outputs.get(name)!;
    if (output.kind !== "fixed") continue;
    const mismatch = fixedOutputMismatch(planned.path, output, scanned.contentHash!);
    if (mismatch === undefined) continue;
    if (!planned.check) {
      await registerUnderContentAddress(planned, name, staged.locations.get(name)!, context);
    }
    return failure("hash-mismatch", mismatch);
  }
  if (planned.check) {
    const registered = new Map(
      [...staged.scanned].map(([name, s]) => [name, { ...s, ...store.queryPathInfo(s.path)! }]),
    );
    const problem = compareRounds(planned.path, registered, staged.scanned, "differs");
    if (problem !== undefined && context.settings.keepFailed) {
      for (const [name, scanned] of staged.scanned) {
        if (scanned.narHash.equals(registered.get(name)!.narHash)) continue;
        const kept = store.physicalPath(scanned.path) + ".check";
        removeTree(kept);
        Deno.renameSync(staged.locations.get(name)!, kept);
        problem.message += ` from '${scanned.path}.check'`;
        break;
      }
    }
    return problem;
  }
  let rejected: string | undefined;
  try {
    rejected = checkOutputs(planned.path, planned.drv, staged.scanned, store);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    rejected = error.message;
  }
  return rejected === undefined ? undefined : failure("output-rejected", rejected);
}

/** `derivation '<drv>' may not be deterministic: output '<path>' differs` at the first change. */
function compareRounds(
  drvPath: string,
  before: ReadonlyMap<string, Pick<ScannedOutput, "path" | "narHash">>,
  after: ReadonlyMap<string, ScannedOutput>,
  verb: string,
): FailureOutcome | undefined {
  for (const [name, scanned] of after) {
    const old = before.get(name);
    if (old !== undefined && !old.narHash.equals(scanned.narHash)) {
      return failure(
        "check-mismatch",
        `derivation '${drvPath}' may not be deterministic: output '${scanned.path}' ${verb}`,
      );
    }
  }
  return undefined;
}

/**
 * A fixed output with the wrong hash is still registered, under the path its contents give (as
 * Nix 2.8 does), so that the download need not be repeated to inspect it.
 */
async function registerUnderContentAddress(
  planned: PlannedDerivation,
  name: string,
  location: string,
  context: DerivationGoalContext,
): Promise<void> {
  const { store } = context;
  const output = planned.drv.outputs.get(name)!;
  if (output.kind !== "fixed" || output.method === "text") return;
  const scanned = scanOutput(location, output.path, { candidates: new Map(), fixed: output });
  const hash = scanned.contentHash!;
  const path = makeFixedOutputPath(store.storeDir, {
    method: output.method,
    hash,
    name: outputPathName(planned.drv.name, name),
  });
  await store.withPathLock([path], () => {
    if (store.isValidPath(path)) return Promise.resolve();
    const dest = store.physicalPath(path);
    removeTree(dest);
    Deno.renameSync(location, dest);
    store.registerValidPaths([{
      ...pathInfo(planned.path, scanned),
      path,
      references: [],
      ca: renderContentAddress(output.method, hash),
    }]);
    return Promise.resolve();
  });
}

/** Unsandboxed builds with more rounds to go: move the outputs out of the way of the next. */
function stageAside(staged: Staged, context: DerivationGoalContext, leftovers: string[]): void {
  for (const [name, location] of staged.locations) {
    const temp = context.store.makeTempPath(basename(location));
    Deno.renameSync(location, temp);
    staged.locations.set(name, temp);
    leftovers.push(temp);
  }
}

/**
 * Removes a round's directories, keeping the build dir of a failure with `-K`; after a failed
 * unsandboxed round, also what the builder left at the output paths.
 */
function finishRound(
  planned: PlannedDerivation,
  round: Round,
  context: DerivationGoalContext,
  options: { failed: boolean; validNow: Set<string> },
): void {
  const keep = context.settings.keepFailed && options.failed;
  if (keep) context.onNote?.(`keeping build directory '${round.buildDir}'`);
  removeRound({ buildDir: keep ? undefined : round.buildDir, rootDir: round.rootDir }, context);
  if (round.rootDir !== undefined || !options.failed) return;
  for (const [name, path] of planned.outputPaths) {
    if (!options.validNow.has(name)) removeTree(context.store.physicalPath(path));
  }
}

/** Moves the staged outputs into place and registers them in one transaction; returns them. */
function register(
  planned: PlannedDerivation,
  staged: Staged,
  validNow: Set<string>,
  context: DerivationGoalContext,
): PathInfo[] {
  const { store } = context;
  const infos: PathInfo[] = [];
  const moved: string[] = [];
  for (const [name, scanned] of staged.scanned) {
    if (validNow.has(name)) continue;
    const dest = store.physicalPath(scanned.path);
    const location = staged.locations.get(name)!;
    if (location !== dest) replacePath(location, dest, context);
    moved.push(dest);
    const info = pathInfo(planned.path, scanned);
    const output = planned.drv.outputs.get(name)!;
    if (output.kind === "fixed" && output.method !== "text") {
      info.ca = renderContentAddress(output.method, output.hash);
    }
    infos.push(info);
  }
  try {
    store.registerValidPaths(infos);
  } catch (error) {
    for (const path of moved) removeTree(path);
    throw error;
  }
  return infos;
}

/** Renames `from` to `to`; an existing `to` (a corrupt path being repaired) is swapped out. */
function replacePath(from: string, to: string, context: DerivationGoalContext): void {
  if (!pathExists(to)) {
    Deno.renameSync(from, to);
    return;
  }
  const old = context.store.makeTempPath(basename(to));
  Deno.renameSync(to, old);
  Deno.renameSync(from, to);
  removeTree(old);
}

function pathInfo(deriver: string, scanned: ScannedOutput): PathInfo {
  return {
    path: scanned.path,
    narHash: scanned.narHash,
    narSize: scanned.narSize,
    references: scanned.references,
    deriver,
    registrationTime: Math.floor(Date.now() / 1000),
    signatures: [],
    ultimate: true,
  };
}
