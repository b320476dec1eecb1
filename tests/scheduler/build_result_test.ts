import { assertEquals } from "../_assert.ts";
import {
  type BuildResult,
  exitCodeOf,
  FAILURE_REASONS,
  type FailureReason,
  type FailureResult,
  nixStatusOf,
} from "../../lib/scheduler/mod.ts";

const base = { kind: "build", path: "/nix/store/x.drv", timesBuilt: 0, startTime: 0, stopTime: 0 };

function failed(reason: FailureReason, transient = false): FailureResult {
  return {
    ...base,
    kind: "build",
    status: "failed",
    reason,
    message: reason,
    exitCode: null,
    logTail: [],
    transient,
  };
}

const built: BuildResult = { ...base, kind: "build", status: "built", outputs: {} };
const valid: BuildResult = { ...built, status: "already-valid" };

Deno.test("exitCodeOf() is 0 when nothing failed", () => {
  assertEquals(exitCodeOf([]), 0);
  assertEquals(exitCodeOf([built, valid, { ...built, status: "substituted" }]), 0);
});

Deno.test("exitCodeOf() sets Nix's bits: 100, 101, 102, 104 and their sums", () => {
  assertEquals(exitCodeOf([built, failed("exit-non-zero")]), 100);
  assertEquals(exitCodeOf([failed("signal")]), 100);
  assertEquals(exitCodeOf([failed("spawn-error")]), 100);
  assertEquals(exitCodeOf([failed("timed-out")]), 101);
  assertEquals(exitCodeOf([failed("silent-timeout")]), 101);
  assertEquals(exitCodeOf([failed("hash-mismatch")]), 102);
  assertEquals(exitCodeOf([failed("check-mismatch")]), 104);
  assertEquals(exitCodeOf([failed("exit-non-zero"), failed("timed-out")]), 101);
  assertEquals(exitCodeOf([failed("timed-out"), failed("hash-mismatch")]), 103);
  assertEquals(exitCodeOf([failed("exit-non-zero"), failed("check-mismatch")]), 108);
  assertEquals(exitCodeOf([failed("dependency-failed"), failed("exit-non-zero")]), 100);
});

Deno.test("exitCodeOf() is 1 for failures that set no bit, like a fixed-output builder's", () => {
  assertEquals(exitCodeOf([failed("exit-non-zero", true)]), 1);
  assertEquals(exitCodeOf([failed("signal", true)]), 1);
  for (
    const reason of [
      "log-limit",
      "output-rejected",
      "dependency-failed",
      "no-substituters",
      "cancelled",
      "internal",
    ] as const
  ) {
    assertEquals(exitCodeOf([built, failed(reason)]), 1, reason);
  }
});

Deno.test("nixStatusOf() gives Nix 2.8's BuildResult status for every outcome", () => {
  assertEquals(nixStatusOf(built), "Built");
  assertEquals(nixStatusOf({ ...built, status: "substituted" }), "Substituted");
  assertEquals(nixStatusOf(valid), "AlreadyValid");
  const expected: Record<FailureReason, string> = {
    "exit-non-zero": "PermanentFailure",
    "signal": "PermanentFailure",
    "timed-out": "TimedOut",
    "silent-timeout": "TimedOut",
    "log-limit": "LogLimitExceeded",
    "hash-mismatch": "OutputRejected",
    "check-mismatch": "NotDeterministic",
    "output-rejected": "OutputRejected",
    "dependency-failed": "DependencyFailed",
    "no-substituters": "NoSubstituters",
    "spawn-error": "InputRejected",
    "cancelled": "MiscFailure",
    "internal": "MiscFailure",
  };
  for (const reason of FAILURE_REASONS) {
    assertEquals(nixStatusOf(failed(reason)), expected[reason], reason);
  }
  assertEquals(nixStatusOf(failed("exit-non-zero", true)), "TransientFailure");
});
