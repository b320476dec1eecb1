/**
 * Build throughput: a wide graph (N trivial `/bin/sh` derivations plus one depending on all of
 * them) and a chain, built from scratch by kiln (without and with the sandbox) and by Nix 2.8
 * (`nix-store --realise`, no substituters, same `-j`). Reports wall times, kiln/Nix ratios and
 * kiln's peak RSS.
 *
 *   deno run --allow-all scripts/bench_build.ts [--wide 300] [--chain 200] [--jobs 2] [--runs 1]
 *     [--json]
 *
 * With `--runs N` every measurement is repeated N times, the tools taking turns (so that a
 * change in the machine's load hits all of them alike), and the fastest run of each is kept.
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { addAll, DrvSet, makeBuildStore, type TestDrv } from "../tests/e2e/_drv.ts";
import { nixAvailable, NixSandbox } from "../tests/_nix.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = join(ROOT, "main.ts");

/** A graph shape to build. */
export type BuildShape = "wide" | "chain";

/** One measurement. */
export interface BuildBenchRow {
  shape: BuildShape;
  nodes: number;
  tool: "kiln" | "kiln-sandbox" | "nix" | "nix-sandbox";
  ms: number;
  /** Peak resident set of the kiln process, in MiB (kiln only). */
  peakMiB?: number;
}

/** Adds the graph to `set`; returns the target. */
export function makeBuildGraph(set: DrvSet, shape: BuildShape, nodes: number): TestDrv {
  if (shape === "wide") {
    const leaves = Array.from(
      { length: nodes },
      (_, i) => set.add({ name: `leaf-${i}`, script: `echo ${i} > $out` }),
    );
    return set.add({ name: "top", inputs: leaves, script: "echo top > $out" });
  }
  let prev = set.add({ name: "link-0", script: "echo 0 > $out" });
  for (let i = 1; i < nodes; i++) {
    prev = set.add({
      name: `link-${i}`,
      inputs: [prev],
      script: `echo ${prev.outputs.out} > $out`,
    });
  }
  return prev;
}

/** The Nix expression of the same graph (same names, builders and scripts: same paths). */
function nixExpression(shape: BuildShape, nodes: number): string {
  if (shape === "wide") {
    return `let leaves = builtins.genList (i: derivation { name = "leaf-\${toString i}"; ` +
      `system = "x86_64-linux"; builder = "/bin/sh"; args = ["-c" "echo \${toString i} > $out"]; }) ${nodes}; ` +
      `in derivation { name = "top"; system = "x86_64-linux"; builder = "/bin/sh"; ` +
      `args = ["-c" "echo top > $out"]; deps = leaves; }`;
  }
  return `let link = i: if i == 0 then derivation { name = "link-0"; system = "x86_64-linux"; ` +
    `builder = "/bin/sh"; args = ["-c" "echo 0 > $out"]; } else let p = link (i - 1); in ` +
    `derivation { name = "link-\${toString i}"; system = "x86_64-linux"; builder = "/bin/sh"; ` +
    `args = ["-c" "echo \${p} > $out"]; }; in link ${nodes - 1}`;
}

/** Builds the graph with kiln in a fresh store; returns wall time and peak RSS. */
export async function benchKiln(
  shape: BuildShape,
  nodes: number,
  options: { jobs: number; sandbox: boolean },
): Promise<BuildBenchRow> {
  const store = makeBuildStore();
  // kiln's default sandbox-paths: /bin/sh with the loader and libraries it needs.
  delete store.env.KILN_CONFIG;
  try {
    const set = new DrvSet(store.storeDir);
    const target = makeBuildGraph(set, shape, nodes);
    await addAll(store, set);
    const args = [
      "-f",
      "%M",
      Deno.execPath(),
      "run",
      "--allow-all",
      "--quiet",
      MAIN,
      "build",
      options.sandbox ? "--sandbox" : "--no-sandbox",
      "-j",
      String(options.jobs),
      target.path,
    ];
    const start = performance.now();
    const out = await new Deno.Command("/usr/bin/time", {
      args,
      env: store.env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const ms = performance.now() - start;
    const stderr = new TextDecoder().decode(out.stderr);
    if (!out.success) throw new Error(`kiln build failed: ${stderr}`);
    const kib = Number(stderr.trim().split("\n").at(-1));
    return {
      shape,
      nodes,
      tool: options.sandbox ? "kiln-sandbox" : "kiln",
      ms,
      peakMiB: Math.round(kib / 1024),
    };
  } finally {
    store.cleanup();
  }
}

/**
 * Nix's sandbox needs the host's dynamically linked /bin/sh and what it loads; Nix 2.8 binds
 * directories, so these are the smallest set that runs it.
 */
const NIX_SANDBOX_CONFIG = "sandbox = true\nsandbox-paths = /bin/sh /lib /lib64 /usr/lib\n";

/**
 * Nix as a root install runs it: builds as the nixbld users (the test stores go without, as
 * several of them run at once; here Nix runs alone).
 */
const AS_INSTALLED = "build-users-group = nixbld\n";

/** Builds the same graph with Nix 2.8 in a fresh store, with or without its sandbox. */
export async function benchNix(
  shape: BuildShape,
  nodes: number,
  options: { jobs: number; sandbox: boolean },
): Promise<BuildBenchRow> {
  const mode = options.sandbox ? NIX_SANDBOX_CONFIG : "sandbox = false\n";
  const nix = new NixSandbox(mode + AS_INSTALLED);
  // The nixbld users must reach the store.
  Deno.chmodSync(nix.root, 0o755);
  try {
    const file = join(nix.root, "graph.nix");
    Deno.writeTextFileSync(file, nixExpression(shape, nodes));
    const drv = (await nix.run("nix-instantiate", [file])).trim();
    const start = performance.now();
    await nix.run("nix-store", ["--realise", drv, "-j", String(options.jobs)]);
    const tool = options.sandbox ? "nix-sandbox" : "nix";
    return { shape, nodes, tool, ms: performance.now() - start };
  } finally {
    nix.cleanup();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      wide: { type: "string", default: "300" },
      chain: { type: "string", default: "200" },
      jobs: { type: "string", default: "2" },
      runs: { type: "string", default: "1" },
      json: { type: "boolean" },
    },
  });
  const jobs = Number(values.jobs);
  const rows: BuildBenchRow[] = [];
  for (
    const [shape, nodes] of [["wide", Number(values.wide)], [
      "chain",
      Number(values.chain),
    ]] as const
  ) {
    const best: BuildBenchRow[] = [];
    for (let run = 0; run < Number(values.runs); run++) {
      const measured = [
        await benchKiln(shape, nodes, { jobs, sandbox: false }),
        await benchKiln(shape, nodes, { jobs, sandbox: true }),
      ];
      if (nixAvailable) {
        measured.push(await benchNix(shape, nodes, { jobs, sandbox: false }));
        measured.push(await benchNix(shape, nodes, { jobs, sandbox: true }));
      }
      for (const [i, row] of measured.entries()) if (!(best[i]?.ms <= row.ms)) best[i] = row;
    }
    rows.push(...best);
  }
  if (values.json) {
    console.log(JSON.stringify(rows));
    return;
  }
  for (const row of rows) {
    const nixTool = row.tool === "kiln-sandbox" ? "nix-sandbox" : "nix";
    const nix = rows.find((r) => r.shape === row.shape && r.tool === nixTool);
    const ratio = nix && row.tool.startsWith("kiln")
      ? `  ${(row.ms / nix.ms).toFixed(2)}x nix`
      : "";
    const mem = row.peakMiB === undefined ? "" : `  peak ${row.peakMiB} MiB`;
    console.log(
      `${row.shape.padEnd(6)} ${String(row.nodes).padStart(4)}  ${row.tool.padEnd(12)} ${
        row.ms.toFixed(0).padStart(6)
      } ms${ratio}${mem}`,
    );
  }
}

if (import.meta.main) await main();
