import { assert, assertEquals } from "../_assert.ts";
import { type BuildOutcome, exitCodeOf, runGoals } from "../../lib/scheduler/mod.ts";
import { GRAPH_SHAPES, makeGraph } from "../../scripts/bench_scheduler.ts";

const NODES = 20_000;

/** A build that settles a few microtasks later, counting how many run at once. */
function countingBuild(fail?: (path: string) => boolean) {
  const stats = { calls: 0, running: 0, maxRunning: 0 };
  const build = async (path: string): Promise<BuildOutcome> => {
    stats.calls++;
    stats.maxRunning = Math.max(stats.maxRunning, ++stats.running);
    for (let i = 0; i < stats.calls % 5; i++) await Promise.resolve();
    stats.running--;
    return fail?.(path)
      ? { status: "failed", reason: "exit-non-zero", message: `${path} failed`, exitCode: 1 }
      : { status: "built" };
  };
  return { stats, build };
}

for (const shape of GRAPH_SHAPES) {
  Deno.test(`runGoals() completes a ${NODES}-goal ${shape} graph within its slots`, async () => {
    const { graph, targets } = makeGraph(shape, NODES);
    const { stats, build } = countingBuild();
    const results = await runGoals(graph, targets, { build, maxJobs: 8 });
    assertEquals(stats.calls, NODES);
    assertEquals(results.size, NODES);
    assert([...results.values()].every((r) => r.status === "built"));
    assert(stats.maxRunning <= 8, `${stats.maxRunning} builds ran at once`);
    if (shape === "wide") assertEquals(stats.maxRunning, 8);
  });
}

for (const keepGoing of [false, true]) {
  Deno.test(`runGoals() fails a ${NODES}-deep chain from its bottom (keepGoing ${keepGoing})`, async () => {
    const { graph, targets } = makeGraph("chain", NODES);
    const bottom = [...graph.keys()][0];
    const { stats, build } = countingBuild((path) => path === bottom);
    const results = await runGoals(graph, targets, { build, keepGoing });
    assertEquals(stats.calls, 1);
    const reasons = new Map<string, number>();
    for (const r of results.values()) {
      const tag = r.status === "failed" ? r.reason : r.status;
      reasons.set(tag, (reasons.get(tag) ?? 0) + 1);
    }
    assertEquals(Object.fromEntries(reasons), {
      "exit-non-zero": 1,
      "dependency-failed": NODES - 1,
    });
    assertEquals(exitCodeOf(results.values()), 100);
  });
}
