/**
 * The goal scheduler: realises a set of targets in a graph of build and substitute goals, as Nix's
 * `Worker` (libstore/build/worker.cc) does, with the work itself injected. Each key is one goal,
 * run at most once; a goal starts when its dependencies have succeeded and a slot of its kind is
 * free (builds: `max-jobs`, substitutions: `max-substitution-jobs`); among ready goals the one with
 * the longest chain of dependents still waiting goes first.
 *
 * A build may start its dependents before it has registered its outputs (`outputsReady`): once
 * they are final on disk the next builder can run while this one's are hashed, checked and
 * registered, which takes a chain's registration off its critical path (no Nix scheduler does
 * this). Only a dependent whose last dependency that was is started so, and it learns through
 * `dependenciesRegistered` when it may register its own outputs; if the dependency then fails,
 * the dependent is aborted and counts as failed by its dependency, as if it had never started:
 * its `started` event comes only once the dependency has succeeded. Its result is held back until
 * the dependency has settled, so results keep Nix's order. `EarlyStart` (_early_start.ts) keeps
 * all of this state.
 *
 * Failure policy (Nix 2.8): without keep-going, the first failure fails its dependents with
 * `N dependencies of derivation '<drv>' failed to build`, aborts the goals still running (Nix
 * clears `topGoals`, leaves its loop and kills the builders as the goals are destroyed) and starts
 * nothing more; the rest is reported cancelled. With keep-going every goal whose dependencies
 * succeed is run, and a goal with failed dependencies fails once all of them have settled.
 */

import type { BuildResult, GoalKind } from "./build_result.ts";
import { ProgressCounter, type SchedulerEvent, type SchedulerListener } from "./events.ts";
import type { BuildFunction, BuildHooks, SubstituteFunction } from "./goal_function.ts";
import { SlotPool } from "./slots.ts";
import { EarlyStart } from "./_early_start.ts";
import { type Goal, type GoalGraph, planGoals, runsBefore } from "./_graph.ts";
import {
  alreadyValidResult,
  cancelledResult,
  dependencyFailedResult,
  invoke,
  noSubstituters,
  resultOf,
  type Settled,
} from "./_outcome.ts";
import { InternalError } from "../sys/mod.ts";

export type { GoalGraph, GoalNode } from "./_graph.ts";

export interface WorkerOptions {
  build: BuildFunction;
  /**
   * Called for a build goal when the last dependency it waits for starts, at most once per goal:
   * it may get ready what needs no inputs (a build dir, an environment) while that runs. The
   * goal may still never start (the dependency can fail).
   */
  prepare?: (drvPath: string) => void;
  /** Without it every substitute goal fails with reason `no-substituters`. */
  substitute?: SubstituteFunction;
  /** Concurrent builds (`max-jobs`); default 1, as Nix. 0 allows substitutions only. */
  maxJobs?: number;
  /** Concurrent substitutions (`max-substitution-jobs`); default 16; 0 acts as 1, as in Nix. */
  maxSubstitutionJobs?: number;
  /** `--keep-going`: build everything buildable instead of stopping at the first failure. */
  keepGoing?: boolean;
  /** Aborting it (Ctrl-C) aborts running goals, which report cancelled, and starts nothing new. */
  signal?: AbortSignal;
  onEvent?: SchedulerListener;
  /** Clock for start and stop times, in milliseconds; default `Date.now`. */
  now?: () => number;
}

/**
 * Realises `targets` and everything they need in `graph`. Resolves, once no goal function is
 * running any more, to a result for every goal of the targets' closure, in discovery order.
 * Rejects (before running anything) on a bad graph or option, and rejects if `onEvent` throws.
 */
export async function runGoals(
  graph: GoalGraph,
  targets: readonly string[],
  options: WorkerOptions,
): Promise<Map<string, BuildResult>> {
  const goals = planGoals(graph, targets);
  const maxJobs = slotCount("maxJobs", options.maxJobs ?? 1);
  const maxSubstitutionJobs = slotCount("maxSubstitutionJobs", options.maxSubstitutionJobs ?? 16);
  if (maxJobs === 0) {
    if (goals.some((goal) => goal.node.kind === "build" && !goal.node.valid)) {
      // Nix 2.8's words (worker.cc), once it finds nothing else to do.
      throw new RangeError(
        "Unable to start any build; either increase '--max-jobs' or enable remote builds",
      );
    }
  }
  const run = new Run(goals, options, {
    build: new SlotPool(maxJobs, runsBefore),
    substitute: new SlotPool(Math.max(1, maxSubstitutionJobs), runsBefore),
  });
  await run.finished;
  return new Map(goals.map((goal) => [goal.path, goal.result!]));
}

function slotCount(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`Option ${name} is not a non-negative integer: ${value}`);
  }
  return value;
}

/** The mutable state of one `runGoals` call. */
class Run {
  readonly finished: Promise<void>;
  readonly #goals: Goal[];
  readonly #options: WorkerOptions;
  readonly #pools: Record<GoalKind, SlotPool<Goal>>;
  readonly #running = new Set<Goal>();
  readonly #progress = new ProgressCounter();
  readonly #early = new EarlyStart();
  readonly #now: () => number;
  #stopping = false;
  #listenerError: { error: unknown } | undefined;
  #resolve!: () => void;
  #reject!: (error: unknown) => void;

  constructor(
    goals: Goal[],
    options: WorkerOptions,
    pools: Record<GoalKind, SlotPool<Goal>>,
  ) {
    this.#goals = goals;
    this.#options = options;
    this.#pools = pools;
    this.#now = options.now ?? Date.now;
    this.finished = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    for (const goal of goals) {
      if (goal.node.valid) {
        goal.state = "done";
        goal.result = alreadyValidResult(goal);
      } else this.#progress.expect(goal.node.kind);
    }
    for (const goal of goals) {
      if (goal.node.valid) continue;
      let pending = 0;
      for (const dependency of goal.dependencies) if (!dependency.node.valid) pending++;
      goal.pending = pending;
      if (pending === 0) this.#makeReady(goal);
    }
    const signal = options.signal;
    if (signal?.aborted) this.#stop(signal.reason);
    else signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#pump();
    this.#checkFinished();
  }

  readonly #onAbort = () => this.#stop(this.#options.signal!.reason);

  #makeReady(goal: Goal): void {
    goal.state = "ready";
    this.#pools[goal.node.kind].enqueue(goal);
  }

  /** Starts ready goals while slots are free. */
  #pump(): void {
    for (const pool of [this.#pools.substitute, this.#pools.build]) {
      while (!this.#stopping) {
        const goal = pool.take();
        if (goal === undefined) break;
        if (goal.state === "ready") this.#launch(goal);
        else pool.release(); // failed by the dependency that started it early
      }
    }
  }

  #launch(goal: Goal): void {
    const kind = goal.node.kind;
    goal.state = "running";
    goal.controller = new AbortController();
    goal.startTime = this.#now();
    this.#running.add(goal);
    this.#progress.start(kind);
    // Started early, it is announced once its dependency has succeeded: if that fails instead,
    // it was never started as far as anyone can tell, as in Nix.
    if (!this.#early.waiting(goal)) this.#announce(goal);
    const fn = kind === "build"
      ? this.#options.build
      : (this.#options.substitute ?? noSubstituters);
    const hooks: BuildHooks = {
      outputsReady: () => this.#outputsReady(goal),
      underway: () => this.#early.markUnderway(goal),
      dependenciesRegistered: this.#early.dependenciesRegistered(goal),
    };
    invoke(fn, goal.path, goal.controller.signal, hooks)
      .then((settled) => this.#settle(goal, settled))
      .catch((error) => this.#reject(error));
    for (const dependent of goal.dependents) {
      if (waitsOnlyFor(dependent) && dependent.node.kind === "build") {
        this.#options.prepare?.(dependent.path);
      }
    }
  }

  #announce(goal: Goal): void {
    this.#emit(() => ({
      type: "started",
      kind: goal.node.kind,
      path: goal.path,
      progress: this.#progress.snapshot(),
    }));
  }

  /** A build's outputs are on disk: the dependents it is the last dependency of may start. */
  #outputsReady(goal: Goal): Promise<boolean> {
    if (goal.state !== "running" || this.#stopping || !this.#early.mayRelease(goal)) {
      return Promise.resolve(false);
    }
    this.#pools[goal.node.kind].release();
    this.#progress.release(goal.node.kind);
    const started = goal.dependents.filter(waitsOnlyFor);
    this.#early.release(goal, started);
    for (const dependent of started) {
      dependent.pending = 0;
      this.#makeReady(dependent);
    }
    this.#pump();
    return this.#early.underway(goal);
  }

  #settle(goal: Goal, settled: Settled): void {
    if (this.#early.holdBack(goal, settled)) return;
    this.#running.delete(goal);
    const released = this.#early.released(goal);
    const doomed = this.#early.doomed(goal);
    if (!released) this.#pools[goal.node.kind].release();
    const result = doomed ? dependencyFailedResult(goal) : resultOf(goal, settled, {
      times: { startTime: goal.startTime, stopTime: this.#now() },
      aborted: goal.controller!.signal.aborted,
    });
    this.#record(goal, result, !released);
    const succeeded = result.status !== "failed";
    if (succeeded) this.#releaseDependents(goal);
    else if (doomed) this.#failDependents(goal);
    else if (!this.#stopping) {
      this.#failDependents(goal);
      if (!this.#options.keepGoing) {
        this.#stop(new DOMException(`Stopped because '${goal.path}' failed`, "AbortError"));
      }
    }
    // Last: settling a held-back dependent may end the run.
    this.#settleStartedEarly(goal, succeeded);
    this.#pump();
    this.#checkFinished();
  }

  /**
   * `goal` has settled: the dependents it started early may register (or, when it failed, are
   * aborted as failed by it), and those that finished meanwhile are settled now.
   */
  #settleStartedEarly(goal: Goal, succeeded: boolean): void {
    for (const dependent of this.#early.startedBy(goal)) {
      const heldBack = this.#early.dependencySettled(dependent, succeeded);
      if (!succeeded) {
        dependent.failedDependencies++;
        if (dependent.state === "ready") {
          this.#recordDependencyFailure(dependent);
          this.#failDependents(dependent);
          continue;
        }
        dependent.controller!.abort(
          new DOMException(`Stopped because '${goal.path}' failed`, "AbortError"),
        );
      } else if (dependent.state === "running") this.#announce(dependent); // else once it launches
      if (heldBack !== undefined) this.#settle(dependent, heldBack);
    }
  }

  #record(goal: Goal, result: BuildResult, wasRunning: boolean): void {
    goal.state = "done";
    goal.result = result;
    this.#progress.finish(goal.node.kind, result, wasRunning);
    this.#emit(() => ({
      type: "finished",
      kind: goal.node.kind,
      path: goal.path,
      result,
      progress: this.#progress.snapshot(),
    }));
  }

  /** A goal succeeded: dependents whose last dependency it was become ready (or fail). */
  #releaseDependents(goal: Goal): void {
    for (const dependent of goal.dependents) {
      if (dependent.state !== "waiting" || --dependent.pending > 0) continue;
      if (dependent.failedDependencies === 0) this.#makeReady(dependent);
      else {
        this.#recordDependencyFailure(dependent);
        this.#failDependents(dependent);
      }
    }
  }

  /**
   * Counts `failed` against its waiting dependents and fails those that are due, then theirs in
   * turn (a work list, not recursion: chains can be 20,000 deep). Without keep-going a dependent
   * fails at once, as Nix wakes a goal on its first failed waitee, so N is 1; with keep-going it
   * fails when its last dependency settles, N counting all that failed.
   */
  #failDependents(failed: Goal): void {
    const work = [failed];
    for (let goal = work.pop(); goal !== undefined; goal = work.pop()) {
      for (const dependent of goal.dependents) {
        if (dependent.state !== "waiting") continue;
        dependent.failedDependencies++;
        dependent.pending--;
        if (this.#options.keepGoing && dependent.pending > 0) continue;
        this.#recordDependencyFailure(dependent);
        work.push(dependent);
      }
    }
  }

  #recordDependencyFailure(goal: Goal): void {
    this.#record(goal, dependencyFailedResult(goal), false);
  }

  #stop(reason: unknown): void {
    if (this.#stopping) return;
    this.#stopping = true;
    for (const goal of this.#running) goal.controller!.abort(reason);
  }

  #emit(make: () => SchedulerEvent): void {
    const listener = this.#options.onEvent;
    if (listener === undefined) return;
    try {
      listener(make());
    } catch (error) {
      this.#listenerError ??= { error };
      this.#stop(error);
    }
  }

  /** Ends the run once nothing runs and nothing more can start. */
  #checkFinished(): void {
    if (this.#running.size > 0) return;
    this.#options.signal?.removeEventListener("abort", this.#onAbort);
    for (const goal of this.#goals) {
      if (goal.state === "done") continue;
      if (!this.#stopping) {
        this.#reject(new InternalError(`goal '${goal.path}' left ${goal.state}`));
        return;
      }
      goal.state = "done";
      goal.result = cancelledResult(goal);
    }
    if (this.#listenerError !== undefined) this.#reject(this.#listenerError.error);
    else this.#resolve();
  }
}

/** Whether `dependent` waits for one dependency more, and none of its dependencies failed. */
function waitsOnlyFor(dependent: Goal): boolean {
  return dependent.state === "waiting" && dependent.pending === 1 &&
    dependent.failedDependencies === 0;
}
