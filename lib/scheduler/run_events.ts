/**
 * What a build run ({@link realise}) tells whoever watches it: one stream of events in Nix's
 * activity model (libutil/logging.hh), so that every front end renders the same thing: the CLI's
 * plain lines, a status line, `--log-format internal-json`, the daemon's stderr channel.
 *
 * - `start` / `stop` bracket an activity: the run's `builds` and `copyPaths` (parents of each
 *   `build` and `substitute`), and each build or substitution. A build started early (before its
 *   dependency registered) starts only once that dependency has succeeded; if it fails instead,
 *   the build never starts as far as the stream tells, and its log lines stay in its log.
 * - `result` events carry what an activity reports: a builder's log line, progress counts of the
 *   parent activities, and (when asked for) an estimate of the time left.
 * - `msg` events are Nix's log messages: the plan (`these 2 derivations will be built:`), the
 *   error of each failed build or substitution, warnings.
 *
 * @module
 */

import type { BuildResult } from "./build_result.ts";

/** Nix's activity types that a run starts (`actBuilds`, `actBuild`, `actCopyPaths`, ...). */
export type ActivityType = "builds" | "build" | "copyPaths" | "substitute";

/** An activity began. `parent` is 0 for the run's top-level activities. */
export interface ActivityStartEvent {
  type: "start";
  id: number;
  activity: ActivityType;
  parent: number;
  /** Nix's activity text (`building '/nix/store/...drv'`), empty for the parents. */
  text: string;
  /** The `.drv` of a build, the store path of a substitution. */
  path?: string;
  /** The derivation's name, for a build (what `-L` prefixes its lines with). */
  name?: string;
  /** A substitution's NAR size, where the cache said it. */
  narSize?: number;
}

/** An activity ended; a build or substitution says how. */
export interface ActivityStopEvent {
  type: "stop";
  id: number;
  result?: BuildResult;
}

/** A line of a builder's output (`resBuildLogLine`). */
export interface LogLineEvent {
  type: "result";
  id: number;
  result: "buildLogLine";
  line: string;
}

/** Counts of a parent activity (`resProgress`): done, expected, running, failed. */
export interface ProgressEvent {
  type: "result";
  id: number;
  result: "progress";
  done: number;
  expected: number;
  running: number;
  failed: number;
}

/**
 * How long the builds still take, from the durations recorded for their derivation names (kiln's
 * own: Nix has no such result); only when every build still to finish has a recorded duration.
 */
export interface EstimateEvent {
  type: "result";
  id: number;
  result: "estimate";
  /** Milliseconds left as of `at` (a `Date.now()` time). */
  remaining: number;
  at: number;
}

/** A log message, as Nix's `logger->log` (errors of failed goals included). */
export interface MessageEvent {
  type: "msg";
  level: "error" | "warn" | "info";
  text: string;
  /**
   * The text without a failed builder's log tail, where it has one: what a front end that shows
   * build logs as they come prints (as Nix's verbose loggers get no tail).
   */
  brief?: string;
}

export type RunEvent =
  | ActivityStartEvent
  | ActivityStopEvent
  | LogLineEvent
  | ProgressEvent
  | EstimateEvent
  | MessageEvent;

/** Receives a run's events; it must not throw (an exception stops the run and rejects it). */
export type RunListener = (event: RunEvent) => void;

const PREFIX = { error: "error: ", warn: "warning: ", info: "" } as const;

/** A message as Nix prints it: `error: ...`, `warning: ...`, or as it is. */
export function messageText(event: MessageEvent): string {
  return `${PREFIX[event.level]}${event.text}`;
}
