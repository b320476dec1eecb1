/**
 * Benchmarks kiln against real Nix, section by section, and prints a table of the best times and
 * the kiln/nix ratio. Each section runs one command per tool in a fresh environment; the Nix
 * column is left empty where Nix is not installed.
 *
 *   deno task bench [--size full|small] [--runs N] [--section NAME]... [PATH]
 *   scripts/bench   (the same)
 *
 * PATH (default /usr/share; `--size small` generates a ~20 MB tree under .bench/) is what the
 * nar-hash and store-add sections hash and add. `--size small` also shrinks the build graphs and
 * the substitution closure, for a quick look; the figures are for `full`.
 * Sections: nar-hash, store-add, build (wide and chain graphs, without and with the sandbox),
 * scheduler (20,000-node graphs through the scheduler alone), substitute (a 500-path, 300 MB
 * closure from file:// caches and from `kiln serve`, `kiln copy --to`, serve throughput).
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { KilnStore } from "../tests/_kiln.ts";
import { nixAvailable, NixSandbox } from "../tests/_nix.ts";
import { benchKiln, benchNix, type BuildShape } from "./bench_build.ts";
import { benchScheduler } from "./bench_scheduler.ts";
import { inTurns, settle } from "./_fair.ts";
import {
  benchServeThroughput,
  prepareSubstituteBench,
  runSubstituteBench,
} from "./bench_substitute.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const KILN = join(ROOT, "scripts/kiln");

/** What a section measures with: the tree and how many timed runs per tool. */
interface BenchContext {
  target: string;
  runs: number;
  small: boolean;
}

/** One measured comparison; `nixMs` is absent when Nix is not available. */
interface BenchRow {
  section: string;
  /** Absent for rows that only carry a note (throughput). */
  kilnMs?: number;
  nixMs?: number;
  note?: string;
}

interface Section {
  name: string;
  summary: string;
  run(context: BenchContext): Promise<BenchRow[]>;
}

/** What one timed command printed and how long it took. */
interface Timed {
  ms: number;
  stdout: string;
}

async function timeCommand(
  cmd: string,
  args: string[],
  env: Record<string, string>,
): Promise<Timed> {
  const start = performance.now();
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const ms = performance.now() - start;
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return { ms, stdout: new TextDecoder().decode(out.stdout).trim() };
}

/** The faster of two timings (either may be missing). */
function faster(a: Timed | undefined, b: Timed | undefined): Timed | undefined {
  return a === undefined || (b !== undefined && b.ms < a.ms) ? b : a;
}

const NIX_ENV = { NIX_CONFIG: "substituters =\nexperimental-features = nix-command" };

const narHashSection: Section = {
  name: "nar-hash",
  summary: "NAR sha256 of the tree: kiln hash path vs nix hash path",
  async run({ target, runs }) {
    const measureKiln = () => timeCommand(KILN, ["hash", "path", target], {});
    const measureNix = nixAvailable
      ? () => timeCommand("nix", ["hash", "path", target], NIX_ENV)
      : undefined;
    let kiln: Timed | undefined;
    let nix: Timed | undefined;
    // One untimed round first: both then read a warm page cache.
    for (let i = -1; i < runs; i++) {
      const [k, n] = await inTurns(i + 1, measureKiln, measureNix);
      if (i < 0) continue;
      kiln = faster(kiln, k);
      nix = faster(nix, n);
    }
    if (nix === undefined) return [{ section: this.name, kilnMs: kiln!.ms }];
    const note = kiln!.stdout === nix.stdout ? undefined : `MISMATCH ${kiln!.stdout} ${nix.stdout}`;
    return [{ section: this.name, kilnMs: kiln!.ms, nixMs: nix.ms, note }];
  },
};

const storeAddSection: Section = {
  name: "store-add",
  summary: "copy the tree into a fresh store: kiln store add vs nix-store --add",
  async run({ target, runs }) {
    // Each run pairs a fresh Nix store with a fresh kiln store of the same logical store dir,
    // so the two printed paths must be equal.
    let kilnMs = Infinity;
    let nixMs = Infinity;
    let note: string | undefined;
    for (let i = 0; i < runs; i++) {
      const nix = new NixSandbox();
      const kiln = new KilnStore(nix.storeDir);
      try {
        const [k, n] = await inTurns(
          i,
          async () => {
            await settle([target]);
            return await timeCommand(KILN, ["store", "add", target], kiln.env);
          },
          nixAvailable
            ? async () => {
              await settle([target]);
              return await timeCommand("nix-store", ["--add", target], nix.env);
            }
            : undefined,
        );
        kilnMs = Math.min(kilnMs, k.ms);
        if (n === undefined) continue;
        nixMs = Math.min(nixMs, n.ms);
        if (k.stdout !== n.stdout) note = `MISMATCH ${k.stdout} ${n.stdout}`;
      } finally {
        kiln.cleanup();
        nix.cleanup();
      }
    }
    return [{ section: this.name, kilnMs, nixMs: nixAvailable ? nixMs : undefined, note }];
  },
};

const buildSection: Section = {
  name: "build",
  summary: "wide (300 + 1) and chain (200) graphs of /bin/sh builds, -j 2, kiln vs nix-store",
  async run({ runs, small }) {
    const rows: BenchRow[] = [];
    const graphs: [BuildShape, number][] = [["wide", small ? 50 : 300], [
      "chain",
      small ? 50 : 200,
    ]];
    for (const [shape, nodes] of graphs) {
      for (const sandbox of [false, true]) {
        let kilnMs = Infinity;
        let nixMs = Infinity;
        let peak = 0;
        for (let i = 0; i < runs; i++) {
          const [kiln, nix] = await inTurns(
            i,
            () => settle().then(() => benchKiln(shape, nodes, { jobs: 2, sandbox })),
            nixAvailable
              ? () => settle().then(() => benchNix(shape, nodes, { jobs: 2, sandbox }))
              : undefined,
          );
          kilnMs = Math.min(kilnMs, kiln.ms);
          peak = Math.max(peak, kiln.peakMiB ?? 0);
          if (nix !== undefined) nixMs = Math.min(nixMs, nix.ms);
        }
        rows.push({
          section: `build-${shape}-${nodes}${sandbox ? "-sandbox" : ""}`,
          kilnMs,
          nixMs: nixAvailable ? nixMs : undefined,
          note: `kiln peak RSS ${peak} MiB`,
        });
      }
    }
    return rows;
  },
};

const schedulerSection: Section = {
  name: "scheduler",
  summary: "random DAGs (~3 deps each) of instant builds through the scheduler alone",
  async run({ small }) {
    const rows: BenchRow[] = [];
    for (const nodes of small ? [1_000, 5_000] : [1_000, 5_000, 20_000]) {
      const { ms, peakRssMb } = await benchScheduler(nodes, "random");
      rows.push({
        section: `scheduler-${nodes}`,
        kilnMs: ms,
        note: `${((ms * 1000) / nodes).toFixed(1)} us per node, peak RSS ${
          peakRssMb.toFixed(0)
        } MiB`,
      });
    }
    return rows;
  },
};

const substituteSection: Section = {
  name: "substitute",
  summary:
    "a 500-path, 300 MB closure: copy --to, optimise, realise from file:// (zstd, xz) and kiln serve",
  async run({ small, runs }) {
    if (!nixAvailable) return [{ section: this.name, note: "needs nix" }];
    using fixture = await prepareSubstituteBench(
      small ? { paths: 100, megabytes: 30, xz: false } : {},
    );
    const rows: BenchRow[] = await runSubstituteBench(fixture, runs);
    for (const clients of [1, 16, 64]) {
      const t = await benchServeThroughput(fixture, { clients });
      rows.push({
        section: `serve-${clients}-clients`,
        note: `${t.narInfoPerSecond.toFixed(0)} narinfo/s, ${
          t.narMegabytesPerSecond.toFixed(0)
        } MB/s of NAR`,
      });
    }
    return rows;
  },
};

const SECTIONS: readonly Section[] = [
  narHashSection,
  storeAddSection,
  buildSection,
  schedulerSection,
  substituteSection,
];

/** A deterministic tree of ~2000 files (~20 MB) with executables and symlinks, made once. */
function ensureSmallTree(): string {
  const tree = join(ROOT, ".bench/small-tree");
  const done = join(ROOT, ".bench/small-tree.done");
  try {
    Deno.statSync(done);
    return tree;
  } catch {
    // not made yet, or made half-way: (re)make it below
  }
  try {
    Deno.removeSync(tree, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  let seed = 1;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648);
  for (let d = 0; d < 50; d++) {
    const dir = join(tree, `dir-${d}`);
    Deno.mkdirSync(dir, { recursive: true });
    for (let f = 0; f < 40; f++) {
      const bytes = new Uint8Array(next() % 20000).map(() => next() & 0xff);
      Deno.writeFileSync(join(dir, `file-${f}`), bytes, { mode: f % 7 === 0 ? 0o755 : 0o644 });
    }
    Deno.symlinkSync(`file-${d % 40}`, join(dir, "link"));
  }
  Deno.writeTextFileSync(done, "");
  return tree;
}

function formatMs(ms: number | undefined): string {
  if (ms === undefined) return "-";
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`;
}

function printTable(rows: BenchRow[], target: string, sizeText: string): void {
  const header = ["section", "kiln", "nix", "kiln/nix"];
  const body = rows.map((r) => [
    r.section,
    formatMs(r.kilnMs),
    formatMs(r.nixMs),
    r.nixMs === undefined || r.kilnMs === undefined ? "-" : (r.kilnMs / r.nixMs).toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join("   ");
  console.log(`\ntarget: ${target} (${sizeText})${nixAvailable ? "" : "; nix not found"}`);
  console.log(line(header));
  for (const b of body) console.log(line(b));
  for (const r of rows) if (r.note) console.log(`${r.section}: ${r.note}`);
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      size: { type: "string", default: "full" },
      runs: { type: "string", default: "3" },
      section: { type: "string", multiple: true },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
  if (values.help) {
    console.log("Usage: scripts/bench [--size full|small] [--runs N] [--section NAME]... [PATH]");
    for (const s of SECTIONS) console.log(`  ${s.name.padEnd(12)}${s.summary}`);
    return 0;
  }
  if (values.size !== "full" && values.size !== "small") {
    console.error(`error: --size is full or small, not '${values.size}'`);
    return 1;
  }
  const target = positionals[0] ?? (values.size === "small" ? ensureSmallTree() : "/usr/share");
  const wanted = values.section ?? SECTIONS.map((s) => s.name);
  const unknown = wanted.filter((w) => !SECTIONS.some((s) => s.name === w));
  if (unknown.length > 0) {
    console.error(`error: unknown section '${unknown[0]}'`);
    return 1;
  }
  const sizeText = new TextDecoder().decode(
    (await new Deno.Command("du", { args: ["-sh", target], stdout: "piped" }).output()).stdout,
  ).split("\t")[0];
  const context = { target, runs: Number(values.runs), small: values.size === "small" };
  const rows: BenchRow[] = [];
  for (const section of SECTIONS.filter((s) => wanted.includes(s.name))) {
    console.error(`running ${section.name}: ${section.summary}`);
    rows.push(...await section.run(context));
  }
  printTable(rows, target, sizeText);
  return 0;
}

if (import.meta.main) Deno.exit(await main());
