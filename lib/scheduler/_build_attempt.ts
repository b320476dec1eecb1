/**
 * One attempt at building a derivation under its output locks: what the phases of
 * derivation_goal.ts share, and the directories the attempt owns (a prepared build dir, the first
 * round's sandbox root, outputs staged aside), given back when it is disposed.
 */

import { basename } from "node:path";
import { derivationType, STRUCTURED_ATTRS_KEY } from "../derivation/mod.ts";
import { removeTree } from "../store/mod.ts";
import type { BuildHooks } from "./goal_function.ts";
import type { BuildPlan, PlannedDerivation } from "./plan.ts";
import {
  type PreparedRound,
  removeDir,
  removeRound,
  type Round,
  type RoundContext,
  type RoundJob,
} from "./_build_round.ts";
import type { ClosureCache } from "./_closure.ts";
import type { ScannedOutput } from "./_outputs.ts";

/** Everything the build function of a run needs. */
export interface DerivationGoalContext extends RoundContext {
  plan: BuildPlan;
  /** Build logs go to `<logDir>/<2 chars>/<rest of the drv base name>.gz`. */
  logDir: string;
  /** Notes for the user (`keeping build directory ...`). */
  onNote?: (message: string) => void;
}

/** The context plus what the builds of one run share. */
export interface RunState extends DerivationGoalContext {
  closures: ClosureCache;
  /** Rounds prepared for builds not started yet (see `DerivationGoals.prepare`). */
  prepared: Map<string, Promise<PreparedRound>>;
}

/** A build's outputs after its first round, before they are registered. */
export interface Staged {
  scanned: Map<string, ScannedOutput>;
  /** Output name -> where it is now. */
  locations: Map<string, string>;
}

/** The inputs of a build, known once they are registered. */
export interface Inputs {
  /** The input closure. */
  paths: string[];
  /** The store paths the output scan looks for, by hash part. */
  candidates: Map<string, string>;
}

/** Whether `planned` builds in the sandbox, and whether it is a fixed-output derivation. */
export function buildMode(
  planned: PlannedDerivation,
  settings: DerivationGoalContext["settings"],
): { sandboxed: boolean; fixedOutput: boolean } {
  const fixedOutput = derivationType(planned.drv) === "fixed";
  const sandboxed = settings.sandbox === "on" ||
    (settings.sandbox === "relaxed" && !fixedOutput && planned.drv.env.get("__noChroot") !== "1");
  return { sandboxed, fixedOutput };
}

/** Whether the builder's environment needs the inputs' registrations (exported reference graphs). */
export function needsInputsFirst(planned: PlannedDerivation): boolean {
  return planned.drv.env.has("exportReferencesGraph") || planned.drv.env.has(STRUCTURED_ATTRS_KEY);
}

/** An attempt, made under the output locks. */
export class BuildAttempt implements AsyncDisposable {
  readonly planned: PlannedDerivation;
  readonly signal: AbortSignal;
  readonly hooks: BuildHooks;
  readonly context: RunState;
  /** Names of the outputs valid (and not corrupt) under the locks (filled by `tryToBuild`). */
  readonly validNow = new Set<string>();
  /** Output paths not valid then: whatever is there is stale (filled by `tryToBuild`). */
  readonly invalid: string[] = [];
  readonly sandboxed: boolean;
  readonly fixedOutput: boolean;
  /** How often the builder runs: once for `--check`, else `rounds`. */
  readonly rounds: number;
  /** Dependents may start once the outputs are in place for good (see `BuildHooks`). */
  readonly releasesEarly: boolean;
  /** The inputs, once registered; undefined when one of them failed (set by `tryLocalBuild`). */
  inputs: Promise<Inputs | undefined> = Promise.resolve(undefined);
  /** What each round runs (set by `tryLocalBuild`). */
  job?: RoundJob;
  /** The round whose builder ran last, until it is finished. */
  round?: Round;
  /** The first round's outputs, once they have passed the checks. */
  staged?: Staged;
  /** Rounds that succeeded. */
  timesBuilt = 0;
  #prepared: PreparedRound | undefined;
  readonly #leftovers: string[] = [];
  #firstRoot: string | undefined;

  constructor(
    planned: PlannedDerivation,
    options: {
      signal: AbortSignal;
      hooks: BuildHooks;
      context: RunState;
      prepared: PreparedRound | undefined;
    },
  ) {
    this.planned = planned;
    this.signal = options.signal;
    this.hooks = options.hooks;
    this.context = options.context;
    this.#prepared = options.prepared;
    const { settings } = this.context;
    const { sandboxed, fixedOutput } = buildMode(planned, settings);
    this.sandboxed = sandboxed;
    this.fixedOutput = fixedOutput;
    this.rounds = planned.check ? 1 : Math.max(1, settings.rounds);
    this.releasesEarly = !sandboxed && this.rounds === 1 && !planned.check;
  }

  /** Outputs examined: with `--check` all of them, else those to register. */
  examined(): string[] {
    const { planned, validNow } = this;
    return [...planned.outputPaths.keys()].filter((o) => planned.check || !validNow.has(o));
  }

  /** Output name -> store path of the wanted outputs. */
  wantedOutputs(): Record<string, string> {
    const { wanted, outputPaths } = this.planned;
    return Object.fromEntries([...wanted].sort().map((o) => [o, outputPaths.get(o)!]));
  }

  /** The prepared round, once: the round that runs from it owns it. */
  takePrepared(): PreparedRound | undefined {
    const prepared = this.#prepared;
    this.#prepared = undefined;
    return prepared;
  }

  /**
   * The current round passed the checks: the first one's outputs are `collected` and stay (in its
   * sandbox, or moved aside from the next round's way); its directories go.
   */
  roundSucceeded(collected: Staged): void {
    const round = this.round!;
    this.round = undefined;
    const first = this.timesBuilt++ === 0;
    if (first) {
      this.staged = collected;
      if (!this.sandboxed && this.rounds > 1) this.#stageAside(collected);
    } else if (!this.sandboxed) {
      // Compared, so done with: the next round's builder (not root) could not overwrite them.
      for (const location of collected.locations.values()) removeTree(location);
    }
    // The first round's sandbox holds the outputs until they are registered.
    const keepRoot = first && round.rootDir !== undefined;
    if (keepRoot) this.#firstRoot = round.rootDir;
    this.#finishRound(keepRoot ? { ...round, rootDir: undefined } : round, false);
  }

  /** Gives back what the attempt still holds; a round not finished has failed. */
  [Symbol.asyncDispose](): Promise<void> {
    if (this.round !== undefined) this.#finishRound(this.round, true);
    this.round = undefined;
    const prepared = this.takePrepared();
    if (prepared !== undefined) this.context.buildDirs.give(prepared.buildDir); // not used
    for (const path of this.#leftovers.splice(0)) removeDir(path, this.context);
    if (this.#firstRoot !== undefined) removeRound({ rootDir: this.#firstRoot }, this.context);
    this.#firstRoot = undefined;
    return Promise.resolve();
  }

  /** Unsandboxed builds with more rounds to go: move the outputs out of the way of the next. */
  #stageAside(staged: Staged): void {
    for (const [name, location] of staged.locations) {
      const temp = this.context.store.makeTempPath(basename(location));
      Deno.renameSync(location, temp);
      staged.locations.set(name, temp);
      this.#leftovers.push(temp);
    }
  }

  /**
   * Removes a round's directories, keeping the build dir of a failure with `-K`; after a failed
   * unsandboxed round, also what the builder left at the output paths.
   */
  #finishRound(round: Round, failed: boolean): void {
    const { context } = this;
    const keep = context.settings.keepFailed && failed;
    if (keep) context.onNote?.(`keeping build directory '${round.buildDir}'`);
    removeRound({ buildDir: keep ? undefined : round.buildDir, rootDir: round.rootDir }, context);
    if (round.rootDir !== undefined || !failed) return;
    for (const [name, path] of this.planned.outputPaths) {
      if (!this.validNow.has(name)) removeTree(context.store.physicalPath(path));
    }
  }
}
