/** Estimator: the time a run has left, from recorded build durations, on a hand-driven clock. */

import { Estimator } from "../../lib/scheduler/_estimate.ts";
import type { Progress, SchedulerEvent } from "../../lib/scheduler/mod.ts";
import { assertEquals } from "../_assert.ts";
import { graphOf } from "./_work.ts";

const PROGRESS: Progress = {
  build: { expected: 0, running: 0, done: 0, failed: 0 },
  substitute: { expected: 0, running: 0, done: 0, failed: 0 },
};

function started(path: string): SchedulerEvent {
  return { type: "started", kind: "build", path, progress: PROGRESS };
}

function finished(path: string): SchedulerEvent {
  const result = { status: "built", path, outputs: {}, startTime: 0, stopTime: 0, timesBuilt: 1 };
  return { type: "finished", kind: "build", path, result, progress: PROGRESS } as SchedulerEvent;
}

Deno.test("Estimator gives the longest chain still to build, less what running builds have done", () => {
  // top needs mid (which needs low) and side: the chain low -> mid -> top is the longest.
  const graph = graphOf({ top: ["mid", "side"], mid: ["low"], low: [], side: [] });
  const ms: Record<string, number> = { top: 1000, mid: 20_000, low: 10_000, side: 25_000 };
  const estimator = new Estimator(graph, Object.keys(ms), (path) => ms[path]);
  assertEquals(estimator.remaining(0), 31_000);
  estimator.update(started("low"), 0);
  estimator.update(started("side"), 0);
  assertEquals(estimator.remaining(4000), 27_000, "low has 6 s left");
  estimator.update(finished("low"), 9000);
  assertEquals(estimator.remaining(9000), 21_000, "mid and top: 21 s; side: 16 s");
  estimator.update(started("mid"), 9000);
  assertEquals(estimator.remaining(40_000), 1000, "mid overran: it counts as done");
});

Deno.test("Estimator gives no estimate while a build has no recorded duration", () => {
  const graph = graphOf({ a: [] });
  assertEquals(new Estimator(graph, ["a"], () => undefined).remaining(0), undefined);
});
