/**
 * What the worker tells its caller while it runs: one `started` and one `finished` event per goal
 * it runs, and a `finished` event for each goal failed by a dependency, each with the progress
 * counts at that moment. The CLI turns them into `building '<drv>'...` lines on stderr and, later,
 * into `--log-format internal-json` activities. Goals whose outputs are already valid, and goals
 * never started because the run stopped, have no events: they appear only in the results.
 */

import type { BuildResult, GoalKind } from "./build_result.ts";

/** Counts for one kind of goal. */
export interface GoalCounts {
  /** Goals of this kind the run has to realise (already-valid ones excluded). */
  expected: number;
  /** Goals holding a slot now. */
  running: number;
  /** Goals that succeeded. */
  done: number;
  /** Goals that failed themselves (not by a dependency, not cancelled), as Nix counts them. */
  failed: number;
}

/** Progress of a run, per kind of goal (Nix's `actBuilds` and `actCopyPaths`). */
export interface Progress {
  build: GoalCounts;
  substitute: GoalCounts;
}

/** A goal function was called. */
export interface GoalStartedEvent {
  type: "started";
  kind: GoalKind;
  path: string;
  progress: Progress;
}

/** A goal has its result. */
export interface GoalFinishedEvent {
  type: "finished";
  kind: GoalKind;
  path: string;
  result: BuildResult;
  progress: Progress;
}

export type SchedulerEvent = GoalStartedEvent | GoalFinishedEvent;

/** Receives events; it must not throw (an exception stops the run and rejects it). */
export type SchedulerListener = (event: SchedulerEvent) => void;

function emptyCounts(): GoalCounts {
  return { expected: 0, running: 0, done: 0, failed: 0 };
}

/** The counters behind `Progress`; `snapshot()` copies them for an event. */
export class ProgressCounter {
  readonly #counts: Progress = { build: emptyCounts(), substitute: emptyCounts() };

  expect(kind: GoalKind): void {
    this.#counts[kind].expected++;
  }

  start(kind: GoalKind): void {
    this.#counts[kind].running++;
  }

  /** A running goal gave its slot back before it ended (a build registering its outputs). */
  release(kind: GoalKind): void {
    this.#counts[kind].running--;
  }

  /** A goal ended; `wasRunning` when it held a slot. */
  finish(kind: GoalKind, result: BuildResult, wasRunning: boolean): void {
    const counts = this.#counts[kind];
    if (wasRunning) counts.running--;
    if (result.status !== "failed") counts.done++;
    else if (result.reason !== "dependency-failed" && result.reason !== "cancelled") {
      counts.failed++;
    }
  }

  snapshot(): Progress {
    return { build: { ...this.#counts.build }, substitute: { ...this.#counts.substitute } };
  }
}
