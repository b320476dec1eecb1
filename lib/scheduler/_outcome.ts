/**
 * From what a goal function did (returned, threw) to the goal's `BuildResult`, plus the results
 * the worker makes itself: already-valid, dependency-failed and cancelled.
 */

import {
  type BuildOutcome,
  type BuildResult,
  FAILURE_REASONS,
  type FailureReason,
  type FailureResult,
  type GoalKind,
  type SubstituteOutcome,
} from "./build_result.ts";
import type { Goal } from "./_graph.ts";
import type { BuildHooks } from "./goal_function.ts";

/** How a goal function's promise settled. */
export type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Calls a goal function; a synchronous throw or a rejection becomes `{ ok: false }`. */
export async function invoke(
  fn: (
    path: string,
    signal: AbortSignal,
    hooks: BuildHooks,
  ) => Promise<BuildOutcome | SubstituteOutcome>,
  path: string,
  signal: AbortSignal,
  hooks: BuildHooks,
): Promise<Settled> {
  try {
    return { ok: true, value: await fn(path, signal, hooks) };
  } catch (error) {
    return { ok: false, error };
  }
}

/** The substitute function when none is given: Nix's answer without substituters. */
export function noSubstituters(storePath: string): Promise<SubstituteOutcome> {
  return Promise.resolve({
    status: "failed",
    reason: "no-substituters",
    message: `path '${storePath}' is required, but there is no substituter that can build it`,
  });
}

type Times = Pick<FailureResult, "startTime" | "stopTime">;

const NEVER_RAN: Times = { startTime: 0, stopTime: 0 };

/** The result of a goal function that ran from `times.startTime` to `times.stopTime`. */
export function resultOf(
  goal: Goal,
  settled: Settled,
  { times, aborted }: { times: Times; aborted: boolean },
): BuildResult {
  const kind = goal.node.kind;
  const verb = kind === "build" ? "building" : "substituting";
  if (!settled.ok) {
    if (aborted) return cancelledResult(goal, times);
    const error = settled.error;
    const text = errorMessage(error);
    return failure(
      goal,
      times,
      "internal",
      `Internal error while ${verb} '${goal.path}': ${text}`,
      {
        cause: error,
      },
    );
  }
  const problem = outcomeProblem(kind, settled.value);
  if (problem !== undefined) {
    const message = `Internal error while ${verb} '${goal.path}': the ${kind} function ${problem}`;
    return failure(goal, times, "internal", message);
  }
  const outcome = settled.value as BuildOutcome | SubstituteOutcome;
  if (outcome.status !== "failed") {
    return {
      kind,
      path: goal.path,
      status: outcome.status,
      outputs: outcome.outputs ?? {},
      timesBuilt: outcome.timesBuilt ?? (outcome.status === "built" ? 1 : 0),
      ...times,
    };
  }
  if (aborted) return cancelledResult(goal, times, outcome.logTail);
  return failure(goal, times, outcome.reason, outcome.message, {
    exitCode: outcome.exitCode ?? null,
    logTail: outcome.logTail ?? [],
    transient: outcome.transient ?? false,
    timesBuilt: outcome.timesBuilt ?? 0,
  });
}

const SUCCESS_STATUSES: Record<GoalKind, readonly string[]> = {
  build: ["built", "already-valid"],
  substitute: ["substituted", "already-valid"],
};

/** Why `value` is not a valid outcome of a `kind` function, or undefined when it is. */
function outcomeProblem(kind: GoalKind, value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) return "returned no result";
  const status = (value as { status?: unknown }).status;
  if (status === "failed") {
    const { reason, message } = value as { reason?: unknown; message?: unknown };
    if (!(FAILURE_REASONS as readonly unknown[]).includes(reason)) {
      return `returned unknown failure reason '${reason}'`;
    }
    return typeof message === "string" ? undefined : "returned a failure without a message";
  }
  return SUCCESS_STATUSES[kind].includes(status as string)
    ? undefined
    : `returned status '${status}'`;
}

/** A goal whose outputs were valid before the run. */
export function alreadyValidResult(goal: Goal): BuildResult {
  return {
    kind: goal.node.kind,
    path: goal.path,
    status: "already-valid",
    outputs: goal.node.outputs ?? {},
    timesBuilt: 0,
    ...NEVER_RAN,
  };
}

/** A goal not run because dependencies failed, in Nix 2.8's words. */
export function dependencyFailedResult(goal: Goal): FailureResult {
  const message = goal.node.kind === "build"
    ? `${goal.failedDependencies} dependencies of derivation '${goal.path}' failed to build`
    : `some references of path '${goal.path}' could not be realised`;
  return failure(goal, NEVER_RAN, "dependency-failed", message);
}

/** A goal aborted while it ran (`times` given), or never started because the run stopped. */
export function cancelledResult(
  goal: Goal,
  times: Times = NEVER_RAN,
  logTail: readonly string[] = [],
): FailureResult {
  const noun = goal.node.kind === "build" ? "build" : "substitution";
  return failure(goal, times, "cancelled", `${noun} of '${goal.path}' was cancelled`, { logTail });
}

function failure(
  goal: Goal,
  times: Times,
  reason: FailureReason,
  message: string,
  extra: Partial<
    Pick<FailureResult, "exitCode" | "logTail" | "transient" | "timesBuilt" | "cause">
  > = {},
): FailureResult {
  return {
    kind: goal.node.kind,
    path: goal.path,
    status: "failed",
    reason,
    message,
    exitCode: null,
    logTail: [],
    transient: false,
    timesBuilt: 0,
    ...times,
    ...extra,
  };
}

/** The message of a thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
