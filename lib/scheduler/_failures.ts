/** How a builder that did not succeed becomes a failure outcome, in Nix 2.8's words. */

import { type BuilderResult, formatLogTail } from "../sandbox/mod.ts";
import type { FailureOutcome } from "./build_result.ts";
import { isDiskFull } from "./_disk_space.ts";
import { unreachable } from "../sys/mod.ts";

/** Signal numbers and `strsignal` descriptions on Linux. */
const SIGNALS: Record<string, [number, string]> = {
  SIGHUP: [1, "Hangup"],
  SIGINT: [2, "Interrupt"],
  SIGQUIT: [3, "Quit"],
  SIGILL: [4, "Illegal instruction"],
  SIGTRAP: [5, "Trace/breakpoint trap"],
  SIGABRT: [6, "Aborted"],
  SIGBUS: [7, "Bus error"],
  SIGFPE: [8, "Floating point exception"],
  SIGKILL: [9, "Killed"],
  SIGUSR1: [10, "User defined signal 1"],
  SIGSEGV: [11, "Segmentation fault"],
  SIGUSR2: [12, "User defined signal 2"],
  SIGPIPE: [13, "Broken pipe"],
  SIGALRM: [14, "Alarm clock"],
  SIGTERM: [15, "Terminated"],
  SIGXCPU: [24, "CPU time limit exceeded"],
  SIGXFSZ: [25, "File size limit exceeded"],
  SIGSYS: [31, "Bad system call"],
};

export interface FailureContext {
  drvPath: string;
  /** Nix's goal name: `building of '<drv>!<outputs or *>' from .drv file`. */
  goalName: string;
  /** A fixed-output builder's failure is transient (Nix: it may be a download that failed). */
  fixedOutput: boolean;
  timeout: number;
  maxSilentTime: number;
  maxLogSize: number;
  /** The store's and the build dir's places on disk: a builder that failed there when either
   * file system is nearly full may have run out of space (a transient failure, as in Nix). */
  fileSystems: readonly string[];
}

/** Nix 2.8's `DerivationGoal::getName()` for a build of `outputs` (all when `*`). */
export function goalName(drvPath: string, outputs: string): string {
  return `building of '${drvPath}!${outputs}' from .drv file`;
}

/** `message` without the log tail that {@link builderFailure} appends, where it has one. */
export function withoutLogTail(message: string): string {
  const end = message.indexOf(";\nlast ");
  return end < 0 ? message : message.slice(0, end);
}

/** The failure for a builder that ended other than with exit code 0. */
export function builderFailure(result: BuilderResult, context: FailureContext): FailureOutcome {
  const { outcome, tail } = result;
  const diskFull = (outcome.kind === "exited" || outcome.kind === "signaled") &&
    isDiskFull(context.fileSystems);
  const withTail = (status: string) => {
    let message = `builder for '${context.drvPath}' ${status}`;
    if (tail.length > 0) {
      message += `;\n${formatLogTail(tail)}For full logs, run 'kiln log ${context.drvPath}'.`;
    }
    if (diskFull) {
      message += "\nnote: build failure may have been caused by lack of free disk space";
    }
    return message;
  };
  const base = {
    status: "failed" as const,
    logTail: tail,
    transient: context.fixedOutput || diskFull,
  };
  switch (outcome.kind) {
    case "exited":
      return {
        ...base,
        reason: "exit-non-zero",
        exitCode: outcome.code,
        message: withTail(`failed with exit code ${outcome.code}`),
      };
    case "signaled": {
      const [number, description] = SIGNALS[outcome.signal] ?? [0, outcome.signal];
      return {
        ...base,
        reason: "signal",
        exitCode: null,
        message: withTail(`failed due to signal ${number} (${description})`),
      };
    }
    case "timed-out":
      return {
        ...base,
        reason: "timed-out",
        transient: false,
        message: `${context.goalName} timed out after ${context.timeout} seconds`,
      };
    case "silent-timeout":
      return {
        ...base,
        reason: "silent-timeout",
        transient: false,
        message: `${context.goalName} timed out after ${context.maxSilentTime} seconds of silence`,
      };
    case "log-limit":
      return {
        ...base,
        reason: "log-limit",
        transient: false,
        message:
          `${context.goalName} killed after writing more than ${context.maxLogSize} bytes of log output`,
      };
    case "cancelled":
      return {
        ...base,
        reason: "cancelled",
        transient: false,
        message: `build of '${context.drvPath}' was cancelled`,
      };
    default:
      return unreachable(outcome);
  }
}
