/**
 * What a goal ends as: a value, never an exception (house style tier 2). Mirrors Nix's
 * `BuildResult` (build-result.hh) with a reason tag in place of Nix's fifteen statuses, and folds a
 * run's results into the exit status `nix-build` reports (`Worker::exitStatus`, worker.cc).
 */

import { unreachable } from "../sys/mod.ts";

/** A goal realises a derivation by building it, or a store path by substituting it. */
export type GoalKind = "build" | "substitute";

/** Why a goal failed. */
export type FailureReason =
  /** The builder exited with a non-zero code. */
  | "exit-non-zero"
  /** The builder was killed by a signal. */
  | "signal"
  /** `timeout` (total build time) ran out. */
  | "timed-out"
  /** `max-silent-time` ran out without output. */
  | "silent-timeout"
  /** `max-build-log-size` was exceeded. */
  | "log-limit"
  /** A fixed-output derivation produced content with another hash. */
  | "hash-mismatch"
  /** `--check` rebuilt the derivation and got different output. */
  | "check-mismatch"
  /** Outputs were rejected for another reason (missing output, disallowed reference ...). */
  | "output-rejected"
  /** A dependency (input derivation, or a reference of a substituted path) failed. */
  | "dependency-failed"
  /** No substituter has the path. */
  | "no-substituters"
  /** The builder could not be started. */
  | "spawn-error"
  /** The run was cancelled, or stopped after another goal failed, before this goal finished. */
  | "cancelled"
  /** A goal function threw, or broke its contract: a bug, not an outcome. */
  | "internal";

/** Every failure reason, for validating input and for tests. */
export const FAILURE_REASONS: readonly FailureReason[] = [
  "exit-non-zero",
  "signal",
  "timed-out",
  "silent-timeout",
  "log-limit",
  "hash-mismatch",
  "check-mismatch",
  "output-rejected",
  "dependency-failed",
  "no-substituters",
  "spawn-error",
  "cancelled",
  "internal",
];

/** A goal function's success. */
export interface SuccessOutcome {
  status: "built" | "substituted" | "already-valid";
  /** Output name -> store path, when the goal knows them (Nix's `builtOutputs`). */
  outputs?: Readonly<Record<string, string>>;
  /** How often the derivation was built (more than 1 with `--repeat`/`--check`); default 1. */
  timesBuilt?: number;
}

/** A goal function's failure. */
export interface FailureOutcome {
  status: "failed";
  reason: FailureReason;
  /** One-line-first description in Nix's words, e.g. `builder for '<drv>' failed with exit code 1`. */
  message: string;
  /** The builder's exit code, when it exited (null when killed or never started). */
  exitCode?: number | null;
  /** The last lines of the build log, oldest first. */
  logTail?: readonly string[];
  /**
   * A failure that may not repeat (Nix's TransientFailure): a fixed-output builder failing (a
   * download), or a full disk. It does not set the "build failure" bit of the exit status.
   */
  transient?: boolean;
  timesBuilt?: number;
}

/** What a build function returns. */
export type BuildOutcome =
  | (SuccessOutcome & { status: "built" | "already-valid" })
  | FailureOutcome;
/** What a substitute function returns. */
export type SubstituteOutcome =
  | (SuccessOutcome & { status: "substituted" | "already-valid" })
  | FailureOutcome;

/** Fields every result has. */
export interface ResultBase {
  kind: GoalKind;
  /** The goal's key: the `.drv` path of a build goal, the store path of a substitute goal. */
  path: string;
  timesBuilt: number;
  /** Milliseconds since the epoch when the goal function started; 0 if it never ran. */
  startTime: number;
  /** Milliseconds since the epoch when it settled; 0 if it never ran. */
  stopTime: number;
}

/** A goal that ended with its outputs valid. */
export interface SuccessResult extends ResultBase {
  status: "built" | "substituted" | "already-valid";
  outputs: Readonly<Record<string, string>>;
}

/** A goal that ended without its outputs. */
export interface FailureResult extends ResultBase {
  status: "failed";
  reason: FailureReason;
  message: string;
  exitCode: number | null;
  logTail: readonly string[];
  transient: boolean;
  /** For reason `internal`: what was thrown. */
  cause?: unknown;
}

/** How one goal ended. */
export type BuildResult = SuccessResult | FailureResult;

/** Nix's `BuildResult::Status` on the wire (worker protocol, `--json` results). */
export const NIX_BUILD_STATUS = {
  Built: 0,
  Substituted: 1,
  AlreadyValid: 2,
  PermanentFailure: 3,
  InputRejected: 4,
  OutputRejected: 5,
  TransientFailure: 6,
  CachedFailure: 7,
  TimedOut: 8,
  MiscFailure: 9,
  DependencyFailed: 10,
  LogLimitExceeded: 11,
  NotDeterministic: 12,
  ResolvesToAlreadyValid: 13,
  NoSubstituters: 14,
} as const;

/** A Nix `BuildResult::Status` name. */
export type NixBuildStatus = keyof typeof NIX_BUILD_STATUS;

/** The status Nix 2.8 gives the same outcome (derivation-goal.cc `buildDone`, `done`). */
export function nixStatusOf(result: BuildResult): NixBuildStatus {
  switch (result.status) {
    case "built":
      return "Built";
    case "substituted":
      return "Substituted";
    case "already-valid":
      return "AlreadyValid";
    case "failed":
      return nixFailureStatusOf(result);
    default:
      return unreachable(result);
  }
}

function nixFailureStatusOf(result: FailureResult): NixBuildStatus {
  switch (result.reason) {
    case "exit-non-zero":
    case "signal":
      return result.transient ? "TransientFailure" : "PermanentFailure";
    case "timed-out":
    case "silent-timeout":
      return "TimedOut";
    case "log-limit":
      return "LogLimitExceeded";
    case "hash-mismatch":
    case "output-rejected":
      return "OutputRejected";
    case "check-mismatch":
      return "NotDeterministic";
    case "dependency-failed":
      return "DependencyFailed";
    case "no-substituters":
      return "NoSubstituters";
    case "spawn-error":
      return "InputRejected";
    case "cancelled":
    case "internal":
      return "MiscFailure";
    default:
      return unreachable(result.reason);
  }
}

/** The worker's failure flags, as Nix 2.8 sets them while goals finish. */
interface FailureFlags {
  permanentFailure: boolean;
  timedOut: boolean;
  hashMismatch: boolean;
  checkMismatch: boolean;
}

function addFailure(flags: FailureFlags, result: FailureResult): void {
  switch (result.reason) {
    case "exit-non-zero":
    case "signal":
      // Nix: PermanentFailure, or TransientFailure for a fixed-output builder (no flag).
      if (!result.transient) flags.permanentFailure = true;
      return;
    case "spawn-error":
      // Nix: startBuilder threw; InputRejected with `worker.permanentFailure = true`.
      flags.permanentFailure = true;
      return;
    case "timed-out":
    case "silent-timeout":
      flags.timedOut = true;
      return;
    case "hash-mismatch":
      flags.hashMismatch = true;
      return;
    case "check-mismatch":
      flags.checkMismatch = true;
      return;
    case "log-limit":
    case "output-rejected":
    case "dependency-failed":
    case "no-substituters":
    case "cancelled":
    case "internal":
      // LogLimitExceeded, OutputRejected, DependencyFailed, NoSubstituters, MiscFailure and an
      // interrupt set no flag: alone they make exit status 1.
      return;
    default:
      return unreachable(result.reason);
  }
}

/**
 * The exit status of a run, as `nix-build` / `nix build` report it: 0 when nothing failed;
 * otherwise 0x60 plus bits 4 (build failure: permanent, timeout or hash mismatch), 1 (timeout),
 * 2 (hash mismatch), 8 (`--check` mismatch) -- 100, 101, 102, 104, ... -- or 1 when no bit is set
 * (only transient, dependency, substitution, log-limit, cancelled or internal failures).
 */
export function exitCodeOf(results: Iterable<BuildResult>): number {
  const flags: FailureFlags = {
    permanentFailure: false,
    timedOut: false,
    hashMismatch: false,
    checkMismatch: false,
  };
  let failed = false;
  for (const result of results) {
    if (result.status !== "failed") continue;
    failed = true;
    addFailure(flags, result);
  }
  if (!failed) return 0;
  let mask = 0;
  if (flags.permanentFailure || flags.timedOut || flags.hashMismatch) mask |= 0x04;
  if (flags.timedOut) mask |= 0x01;
  if (flags.hashMismatch) mask |= 0x02;
  if (flags.checkMismatch) mask |= 0x08;
  return mask === 0 ? 1 : mask | 0x60;
}
