/**
 * Building one derivation, as Nix 2.8's `DerivationGoal` / `LocalDerivationGoal` do once the
 * inputs are there, in phases named after Nix's states, each taking the attempt (a `BuildAttempt`,
 * which owns the directories) to the next phase or to the outcome: under the output locks
 * `tryToBuild` re-checks validity (another process may have built it), `tryLocalBuild` clears
 * stale files and waits for the inputs where it must, `startBuilder` runs the builder (`rounds`
 * times, or once more for `--check`), `buildDone` examines the outputs, and `registerOutputs`
 * registers them in one transaction, deriver = the `.drv`, ultimate.
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

import { sandboxPathsOf } from "../sandbox/mod.ts";
import { pathExists, removeTree } from "../store/mod.ts";
import { buildLogPath } from "./build_log.ts";
import type { BuildOutcome } from "./build_result.ts";
import type { BuildFunction } from "./goal_function.ts";
import { InternalError } from "./internal_error.ts";
import type { PlannedDerivation } from "./plan.ts";
import {
  BuildAttempt,
  buildMode,
  type DerivationGoalContext,
  type Inputs,
  needsInputsFirst,
  type RunState,
} from "./_build_attempt.ts";
import {
  collect,
  compareRounds,
  failure,
  firstRoundProblem,
  outputLocations,
  register,
} from "./_build_done.ts";
import { prepareRound, runRound } from "./_build_round.ts";
import { ClosureCache } from "./_closure.ts";
import { errorMessage } from "./_outcome.ts";
import { builderFailure, goalName } from "./_failures.ts";
import { referenceCandidates } from "./_outputs.ts";

export type { BuildSettings } from "./_build_round.ts";
export type { DerivationGoalContext } from "./_build_attempt.ts";

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
    if (found === undefined) throw new InternalError(`'${drvPath}' is not planned`);
    return found;
  };
  return {
    build(drvPath, signal, hooks) {
      started.add(drvPath);
      const derivation = planned(drvPath);
      const outputs = [...derivation.outputPaths.values()];
      return context.store.withPathLock(outputs, async () => {
        const prepared = await run.prepared.get(drvPath)?.catch(() => undefined);
        run.prepared.delete(drvPath);
        await using attempt = new BuildAttempt(derivation, {
          signal,
          hooks,
          context: run,
          prepared,
        });
        return await runPhases(attempt);
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

/** What a phase leads to: the next phase, or how the build ended. */
type Step = Phase | BuildOutcome;
/** One of Nix's `DerivationGoal` states: takes the attempt on to its next step. */
type Phase = (attempt: BuildAttempt) => Step | Promise<Step>;

/** Runs the phases of `attempt` from `tryToBuild` until one of them returns its outcome. */
async function runPhases(attempt: BuildAttempt): Promise<BuildOutcome> {
  let step: Step = tryToBuild;
  while (typeof step === "function") {
    const next: Step | Promise<Step> = step(attempt);
    step = next instanceof Promise ? await next : next; // no detour through the microtasks
  }
  return step;
}

/** Under the output locks: the outputs may have become valid meanwhile (another process). */
function tryToBuild(attempt: BuildAttempt): Step {
  const { planned, validNow, context } = attempt;
  for (const [name, path] of planned.outputPaths) {
    if (!context.store.isValidPath(path)) attempt.invalid.push(path);
    else if (!planned.corrupt.has(name)) validNow.add(name);
  }
  if (!planned.check && [...planned.wanted].every((o) => validNow.has(o))) {
    return { status: "already-valid", outputs: attempt.wantedOutputs() };
  }
  return tryLocalBuild;
}

/**
 * Whether the build can run here; stale files at the output paths go; the inputs are awaited
 * where the builder needs their registrations (the sandbox, exported reference graphs), else
 * watched while it runs.
 */
async function tryLocalBuild(attempt: BuildAttempt): Promise<Step> {
  const { planned, context, hooks, sandboxed } = attempt;
  if (!sandboxed) {
    const problem = unsandboxedProblem(planned, attempt.validNow, context);
    if (problem !== undefined) return failure("spawn-error", problem);
  }
  for (const path of attempt.invalid) removeTree(context.store.physicalPath(path));
  attempt.inputs = registeredInputs(attempt);
  const inputsFirst = sandboxed || needsInputsFirst(planned);
  if (inputsFirst) hooks.underway();
  const inputPaths = inputsFirst ? (await attempt.inputs)?.paths : [];
  if (inputPaths === undefined) return cancelled(attempt);
  attempt.job = {
    drvPath: planned.path,
    drv: planned.drv,
    outputPaths: planned.outputPaths,
    fixedOutput: attempt.fixedOutput,
    sandboxed,
    inputPaths: sandboxed ? sandboxStorePaths(inputPaths, context) : [],
    logPath: buildLogPath(context.logDir, planned.path),
    signal: attempt.signal,
    onSpawned: hooks.underway,
  };
  return startBuilder;
}

/**
 * The input closure and the reference candidates, once the inputs are registered (commonly while
 * the builder runs); undefined when one of them failed.
 */
function registeredInputs(attempt: BuildAttempt): Promise<Inputs | undefined> {
  const { planned, context } = attempt;
  const inputs = attempt.hooks.dependenciesRegistered.then((ok) => {
    if (!ok) return undefined;
    const paths = inputClosure(planned, context);
    const outputs = planned.outputPaths.values();
    return {
      paths,
      candidates: referenceCandidates(context.store.storeDir, [...paths, ...outputs]),
    };
  });
  inputs.catch(() => {}); // awaited later (a bad input then fails the build), never unhandled
  return inputs;
}

/** Runs the builder once (the first time from the prepared round, if any). */
async function startBuilder(attempt: BuildAttempt): Promise<Step> {
  try {
    attempt.round = await runRound(attempt.job!, attempt.context, attempt.takePrepared());
  } catch (error) {
    if (attempt.signal.aborted) return cancelled(attempt);
    return failure(
      "spawn-error",
      `Cannot start the builder of '${attempt.planned.path}': ${errorMessage(error)}`,
    );
  }
  return buildDone;
}

/**
 * The builder has ended: its outputs are found and canonicalised (dependents may start then),
 * scanned and checked, or compared with the first round's; the next round, or the registration.
 */
async function buildDone(attempt: BuildAttempt): Promise<Step> {
  const { planned, context } = attempt;
  const { settings } = context;
  const round = attempt.round!;
  const outcome = round.result.outcome;
  if (outcome.kind !== "exited" || outcome.code !== 0) {
    return builderFailure(round.result, {
      drvPath: planned.path,
      goalName: goalName(planned.path, planned.allOutputs ? "*" : [...planned.wanted].join(",")),
      fixedOutput: attempt.fixedOutput,
      timeout: settings.timeout,
      maxSilentTime: settings.maxSilentTime,
      maxLogSize: settings.maxLogSize,
      fileSystems: [context.store.physicalPath(context.store.storeDir), round.buildDir],
    });
  }
  const { candidates } = (await attempt.inputs) ?? {};
  if (candidates === undefined) return cancelled(attempt);
  const locations = outputLocations(planned, round, attempt.examined(), context);
  if ("rejected" in locations) return failure("output-rejected", locations.rejected);
  // The dependents just started reach their builders first; this build's checks then overlap
  // with them.
  if (attempt.releasesEarly) await attempt.hooks.outputsReady();
  const collected = collect(planned, locations, candidates);
  if ("status" in collected) return collected;
  const problem = attempt.staged === undefined
    ? await firstRoundProblem(planned, collected, context)
    : compareRounds(planned.path, attempt.staged.scanned, collected.scanned);
  if (problem !== undefined) return problem;
  attempt.roundSucceeded(collected);
  return attempt.timesBuilt < attempt.rounds ? startBuilder : registerOutputs;
}

/** Moves the outputs into place and registers them (not for `--check`). */
function registerOutputs(attempt: BuildAttempt): Step {
  const { planned, context } = attempt;
  if (!planned.check) {
    for (const info of register(planned, attempt.staged!, attempt.validNow, context)) {
      context.closures.remember(info.path, info.references);
    }
  }
  return { status: "built", outputs: attempt.wantedOutputs(), timesBuilt: attempt.rounds };
}

function cancelled(attempt: BuildAttempt): BuildOutcome {
  return failure("cancelled", `build of '${attempt.planned.path}' was cancelled`);
}

/** Why the derivation cannot be built without the sandbox here, or undefined. */
function unsandboxedProblem(
  planned: PlannedDerivation,
  validNow: Set<string>,
  context: Pick<RunState, "storeRoot" | "storeView">,
): string | undefined {
  const drvPath = planned.path;
  const { storeRoot } = context;
  if (storeRoot !== "/" && context.storeView === undefined) {
    return `Cannot build '${drvPath}' without the sandbox: the store lives under '${storeRoot}', ` +
      `so the builder would not find its inputs at their store paths (use the sandbox, store root '/', ` +
      `or user namespaces)`;
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
  for (const { hostPath: host } of sandboxPathsOf(context.settings.sandboxPaths)) {
    const prefix = prefixes.find((p) => host.startsWith(p));
    if (prefix === undefined) continue;
    const path = storeDir + host.slice(prefix.length).split("/")[0];
    if (store.isValidPath(path)) roots.push(path);
  }
  if (roots.length === 0) return inputs;
  return [...new Set([...inputs, ...context.closures.closure(roots)])].sort();
}
