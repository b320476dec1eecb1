/**
 * Scheduler overhead: runs graphs of instant (already-resolved) builds through `runGoals` and
 * reports wall time, time per goal and peak RSS, for 1,000 / 5,000 / 20,000 goals in three shapes,
 * so linear growth (flat µs per goal) is visible.
 *
 *   deno run --allow-all scripts/bench_scheduler.ts [--json]
 */

import { type GoalNode, runGoals } from "../lib/scheduler/mod.ts";

/** wide: one target over n-1 leaves; chain: each goal needs the previous; random: ~3 deps each. */
export type GraphShape = "wide" | "chain" | "random";

export const GRAPH_SHAPES: readonly GraphShape[] = ["wide", "chain", "random"];

/** A graph of `nodes` build goals in `shape`, with the targets that close over all of it. */
export function makeGraph(
  shape: GraphShape,
  nodes: number,
): { graph: Map<string, GoalNode>; targets: string[] } {
  const key = (i: number) => `/nix/store/${String(i).padStart(32, "0")}-node-${i}.drv`;
  const graph = new Map<string, GoalNode>();
  switch (shape) {
    case "wide": {
      const leaves = Array.from({ length: nodes - 1 }, (_, i) => key(i + 1));
      for (const leaf of leaves) graph.set(leaf, { kind: "build", dependencies: [] });
      graph.set(key(0), { kind: "build", dependencies: leaves });
      return { graph, targets: [key(0)] };
    }
    case "chain":
      for (let i = 0; i < nodes; i++) {
        graph.set(key(i), { kind: "build", dependencies: i === 0 ? [] : [key(i - 1)] });
      }
      return { graph, targets: [key(nodes - 1)] };
    case "random": {
      // Node i depends on up to 3 earlier nodes (a DAG by construction); fixed seed.
      let seed = 42;
      const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
      const targets: string[] = [];
      for (let i = 0; i < nodes; i++) {
        const dependencies = new Set<string>();
        for (let d = 0; d < Math.min(3, i); d++) dependencies.add(key(Math.floor(random() * i)));
        graph.set(key(i), { kind: "build", dependencies: [...dependencies] });
        targets.push(key(i));
      }
      return { graph, targets };
    }
    default: {
      const never: never = shape;
      throw new TypeError(`Unknown graph shape '${never}'`);
    }
  }
}

/** Runs one graph of instant builds; wall milliseconds and peak RSS in MiB while it ran. */
export async function benchScheduler(
  nodes: number,
  shape: GraphShape = "random",
): Promise<{ ms: number; peakRssMb: number }> {
  const { graph, targets } = makeGraph(shape, nodes);
  let peakRss = Deno.memoryUsage().rss;
  let calls = 0;
  const start = performance.now();
  const results = await runGoals(graph, targets, {
    build: () => {
      if (++calls % 1000 === 0) peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
      return Promise.resolve({ status: "built" });
    },
    maxJobs: 16,
    onEvent: () => {},
  });
  const ms = performance.now() - start;
  peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
  if (calls !== nodes || results.size !== nodes) {
    throw new Error(`Internal error: ${calls} builds and ${results.size} results for ${nodes}`);
  }
  return { ms, peakRssMb: peakRss / 2 ** 20 };
}

/** One case in a fresh process, so RSS and garbage collection belong to it alone. */
async function benchInChild(shape: GraphShape, nodes: number): Promise<BenchRow> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", import.meta.filename!, "--case", shape, String(nodes)],
  }).output();
  const decoder = new TextDecoder();
  if (code !== 0) {
    throw new Error(`Benchmark case ${shape} ${nodes} failed: ${decoder.decode(stderr)}`);
  }
  return JSON.parse(decoder.decode(stdout));
}

interface BenchRow {
  shape: GraphShape;
  nodes: number;
  ms: number;
  usPerNode: number;
  peakRssMb: number;
}

async function benchCase(shape: GraphShape, nodes: number): Promise<BenchRow> {
  await benchScheduler(1000, shape); // warm up the JIT
  const { ms, peakRssMb } = await benchScheduler(nodes, shape);
  return { shape, nodes, ms, usPerNode: (ms * 1000) / nodes, peakRssMb };
}

if (import.meta.main) {
  const caseAt = Deno.args.indexOf("--case");
  if (caseAt >= 0) {
    const shape = Deno.args[caseAt + 1] as GraphShape;
    console.log(JSON.stringify(await benchCase(shape, Number(Deno.args[caseAt + 2]))));
  } else {
    const rows: BenchRow[] = [];
    for (const shape of GRAPH_SHAPES) {
      for (const nodes of [1_000, 5_000, 20_000]) rows.push(await benchInChild(shape, nodes));
    }
    if (Deno.args.includes("--json")) console.log(JSON.stringify(rows));
    else {
      console.log("shape   nodes    total ms   µs/node   peak RSS MiB");
      for (const r of rows) {
        console.log(
          `${r.shape.padEnd(7)} ${String(r.nodes).padStart(6)} ${r.ms.toFixed(1).padStart(11)} ${
            r.usPerNode.toFixed(2).padStart(9)
          } ${r.peakRssMb.toFixed(1).padStart(14)}`,
        );
      }
    }
  }
}
