/**
 * Substitution speed, kiln vs Nix 2.8: a closure of `paths` store paths holding `megabytes` of
 * base64 blobs (default 500 / 300, as the issue asks) is copied into file:// caches (zstd, xz)
 * and substituted from them and from `kiln serve` over loopback into fresh stores; the closure
 * is optimised (`kiln store optimise`, `nix-store --optimise`); plus
 * `kiln serve` throughput for narinfo and NAR requests from concurrent clients.
 *
 *   deno run --allow-all scripts/bench_substitute.ts [--paths N] [--megabytes M] [--no-xz] [--runs N]
 *
 * `prepareSubstituteBench` / `runSubstituteBench` / `benchServeThroughput` are what
 * scripts/bench.ts hooks in. Writing xz caches takes minutes at full size (Nix ~70 s, kiln
 * longer): `xz: false` (`--no-xz`) leaves the xz rows out.
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { encodeBase64 } from "../lib/hashing/mod.ts";
import { removeTree } from "../lib/store/mod.ts";
import { KilnStore } from "../tests/_kiln.ts";
import { nixAvailable, NixSandbox } from "../tests/_nix.ts";
import { inTurns, settle } from "./_fair.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const KILN = join(ROOT, "scripts/kiln");

/** One measured comparison, as scripts/bench.ts prints them. */
export interface SubstituteBenchRow {
  section: string;
  kilnMs: number;
  nixMs?: number;
  note?: string;
}

/** A Nix store holding the closure, a kiln store holding the same, caches and keys. */
export interface SubstituteBenchFixture extends Disposable {
  nix: NixSandbox;
  kiln: KilnStore;
  top: string;
  paths: number;
  bytes: number;
  /** `name:key` public key that signed the caches. */
  publicKey: string;
  secretKeyFile: string;
  caches: { zstd: string; xz?: string };
  /** How long writing each cache took (kiln and Nix). */
  rows: SubstituteBenchRow[];
}

/** Options of {@link prepareSubstituteBench}. */
export interface SubstituteBenchOptions {
  paths?: number;
  megabytes?: number;
  /** Write (and time writing, then reading) xz caches too; default true. */
  xz?: boolean;
}

async function run(
  cmd: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ ms: number; stdout: string }> {
  const start = performance.now();
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  const ms = performance.now() - start;
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return { ms, stdout: new TextDecoder().decode(out.stdout).trim() };
}

/** `copy --to` a signed file:// cache in `dir`, compressed with `method`, by kiln or by Nix. */
function copyTo(
  source: Pick<SubstituteBenchFixture, "nix" | "kiln" | "top" | "secretKeyFile">,
  tool: "kiln" | "nix",
  dir: string,
  method: "zstd" | "xz",
): Promise<{ ms: number; stdout: string }> {
  const { top, secretKeyFile } = source;
  return tool === "kiln"
    ? run(KILN, [
      "copy",
      "--to",
      `file://${dir}?secret-key=${secretKeyFile}`,
      "--compression",
      method,
      top,
    ], source.kiln.env)
    : run("nix", [
      "copy",
      "--to",
      `file://${dir}?compression=${method}&secret-key=${secretKeyFile}`,
      top,
    ], source.nix.env);
}

/**
 * Makes the closure in a NixSandbox (`paths - 1` blobs added with nix-store --add, and a top
 * text path referring to all of them), writes signed zstd and xz caches, and imports the closure
 * into a kiln store with the same store dir (for `kiln serve`).
 */
export async function prepareSubstituteBench(
  options: SubstituteBenchOptions = {},
): Promise<SubstituteBenchFixture> {
  if (!nixAvailable) throw new Error("The substitution benchmark needs Nix");
  const count = options.paths ?? 500;
  const bytes = (options.megabytes ?? 300) * 1024 * 1024;
  const nix = new NixSandbox();
  const kiln = new KilnStore(nix.storeDir);
  const rows: SubstituteBenchRow[] = [];
  try {
    const src = join(nix.root, "blobs");
    Deno.mkdirSync(src);
    const raw = new Uint8Array(Math.ceil((bytes / (count - 1)) * 3 / 4));
    const files: string[] = [];
    for (let i = 0; i < count - 1; i++) {
      for (let off = 0; off < raw.length; off += 65536) {
        crypto.getRandomValues(raw.subarray(off, Math.min(off + 65536, raw.length)));
      }
      const file = join(src, `blob-${i}`);
      Deno.writeTextFileSync(file, encodeBase64(raw));
      files.push(file);
    }
    const blobs = (await run("nix-store", ["--add", ...files], nix.env)).stdout.split("\n");
    Deno.removeSync(src, { recursive: true });
    const expr = `builtins.toFile "top" "${
      blobs.map((p) => `\${builtins.storePath ${p}}`).join(" ")
    }"`;
    const top = JSON.parse(
      (await run("nix-instantiate", ["--eval", "--read-write-mode", "--expr", expr], nix.env))
        .stdout,
    ) as string;
    const secretKeyFile = join(nix.root, "sk");
    const pkFile = join(nix.root, "pk");
    await run("nix-store", ["--generate-binary-cache-key", "bench-1", secretKeyFile, pkFile], {
      ...nix.env,
    });
    const publicKey = Deno.readTextFileSync(pkFile);
    const caches: SubstituteBenchFixture["caches"] = { zstd: join(nix.root, "cache-zstd") };
    // Writing: Nix and kiln each write zstd (and xz) caches of the closure.
    const source = { nix, kiln, top, secretKeyFile };
    const nixZstd = await copyTo(source, "nix", caches.zstd, "zstd");
    await run(KILN, [
      "copy",
      "--from",
      `file://${caches.zstd}`,
      top,
      "--option",
      "trusted-public-keys",
      publicKey,
    ], kiln.env);
    const kilnZstd = await copyTo(source, "kiln", join(nix.root, "kiln-zstd"), "zstd");
    rows.push({ section: "copy-to-zstd", kilnMs: kilnZstd.ms, nixMs: nixZstd.ms });
    if (options.xz ?? true) {
      caches.xz = join(nix.root, "cache-xz");
      const kilnXz = await copyTo(source, "kiln", join(nix.root, "kiln-xz"), "xz");
      const nixXz = await copyTo(source, "nix", caches.xz, "xz");
      rows.push({
        section: "copy-to-xz",
        kilnMs: kilnXz.ms,
        nixMs: nixXz.ms,
        note: "kiln xz preset 1, Nix preset 6",
      });
    }
    return {
      nix,
      kiln,
      top,
      paths: count,
      bytes,
      publicKey,
      secretKeyFile,
      caches,
      rows,
      [Symbol.dispose]() {
        kiln.cleanup();
        nix.cleanup();
      },
    };
  } catch (e) {
    kiln.cleanup();
    nix.cleanup();
    throw e;
  }
}

/**
 * Substitutes the closure from `url` into a fresh kiln store and into the emptied Nix store,
 * `runs` times, keeping each tool's fastest; kiln goes first in even runs and Nix in odd ones.
 * Each run starts from Nix's garbage collection, which the first tool must not pay for (see
 * _fair.ts).
 */
async function timeSubstitution(
  f: SubstituteBenchFixture,
  section: string,
  url: string,
  runs: number,
): Promise<SubstituteBenchRow> {
  const row: SubstituteBenchRow = { section, kilnMs: Infinity, nixMs: Infinity };
  for (let i = 0; i < runs; i++) {
    const fresh = new KilnStore(f.nix.storeDir);
    try {
      await run("nix-store", ["--gc"], f.nix.env);
      await settle(url.startsWith("file://") ? [url.slice("file://".length)] : []);
      const kiln = () =>
        run(
          KILN,
          ["copy", "--from", url, f.top, "--option", "trusted-public-keys", f.publicKey],
          fresh.env,
        );
      const nix = () =>
        run("nix-store", [
          "--realise",
          f.top,
          "--option",
          "substituters",
          url,
          "--option",
          "trusted-public-keys",
          f.publicKey,
        ], f.nix.env);
      const [k, n] = await inTurns(i, kiln, nix);
      row.kilnMs = Math.min(row.kilnMs, k.ms);
      row.nixMs = Math.min(row.nixMs!, n!.ms);
      const count = (await run(KILN, ["store", "path-info", "--recursive", f.top], fresh.env))
        .stdout.split("\n").length;
      if (count !== f.paths) row.note = `MISMATCH: kiln has ${count} paths`;
    } finally {
      fresh.cleanup();
    }
  }
  return row;
}

/**
 * Copies the closure into new zstd file:// caches once more with each tool (Nix first in odd
 * runs), lowering `row`'s times where this run was faster.
 */
async function timeCopyTo(
  f: SubstituteBenchFixture,
  runIndex: number,
  row: SubstituteBenchRow,
): Promise<void> {
  const kilnDir = join(f.nix.root, `kiln-zstd-${runIndex}`);
  const nixDir = join(f.nix.root, `nix-zstd-${runIndex}`);
  await settle([f.nix.storeDir]); // after the previous run's removal of both caches
  const [k, n] = await inTurns(
    runIndex,
    () => copyTo(f, "kiln", kilnDir, "zstd"),
    () => copyTo(f, "nix", nixDir, "zstd"),
  );
  row.kilnMs = Math.min(row.kilnMs, k.ms);
  row.nixMs = Math.min(row.nixMs!, n!.ms);
  Deno.removeSync(kilnDir, { recursive: true });
  Deno.removeSync(nixDir, { recursive: true });
}

/**
 * `kiln store optimise` against `nix-store --optimise` on the closure, `runs` times in turns, each
 * from stores whose `.links` was removed (so every file is linked again); medians.
 */
async function timeOptimise(f: SubstituteBenchFixture, runs: number): Promise<SubstituteBenchRow> {
  const kilnMs: number[] = [];
  const nixMs: number[] = [];
  let note: string | undefined;
  const stores = [f.nix.storeDir, f.kiln.physical(f.nix.storeDir)];
  for (let i = 0; i < runs; i++) {
    for (const store of stores) removeTree(join(store, ".links"));
    await settle(stores);
    const optimise = async (cmd: string, args: string[], env: Record<string, string>) => {
      const start = performance.now();
      const out = await new Deno.Command(cmd, { args, env, stdout: "null", stderr: "piped" })
        .output();
      const ms = performance.now() - start;
      const stderr = new TextDecoder().decode(out.stderr);
      if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed: ${stderr}`);
      return { ms, freed: stderr.split("\n").filter((l) => l.includes(" freed by ")).join() };
    };
    const [k, n] = await inTurns(
      i,
      () => optimise(KILN, ["store", "optimise"], f.kiln.env),
      () => optimise("nix-store", ["--optimise"], f.nix.env),
    );
    kilnMs.push(k.ms);
    nixMs.push(n!.ms);
    if (k.freed !== n!.freed) note = `MISMATCH: kiln '${k.freed}', Nix '${n!.freed}'`;
  }
  return {
    section: "optimise",
    kilnMs: median(kilnMs),
    nixMs: median(nixMs),
    note: note ?? "median",
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Starts `kiln serve` on a free loopback port in `kiln`'s store; returns its URL and a stopper. */
export async function startKilnServe(
  kiln: KilnStore,
  args: string[] = [],
): Promise<{ url: string } & AsyncDisposable> {
  const child = new Deno.Command(KILN, {
    args: ["serve", "--listen", "127.0.0.1:0", ...args],
    env: kiln.env,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/listening on \S+\n/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`kiln serve did not start: ${text}`);
    text += value;
  }
  const drain = (async () => {
    while (!(await reader.read()).done) {
      // keep the pipe from filling up
    }
  })();
  return {
    url: /listening on (\S+)\n/.exec(text)![1],
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      await child.status;
      await drain;
    },
  };
}

/** The substitution rows: from the zstd and xz file:// caches and from `kiln serve`. */
export async function runSubstituteBench(
  f: SubstituteBenchFixture,
  runs = 1,
): Promise<SubstituteBenchRow[]> {
  const rows = f.rows.map((row) => ({ ...row }));
  const copyTo = rows.find((row) => row.section === "copy-to-zstd")!;
  for (let i = 1; i < runs; i++) await timeCopyTo(f, i, copyTo);
  rows.push(await timeOptimise(f, runs));
  rows.push(await timeSubstitution(f, "subst-file-zstd", `file://${f.caches.zstd}`, runs));
  if (f.caches.xz) {
    rows.push(await timeSubstitution(f, "subst-file-xz", `file://${f.caches.xz}`, runs));
  }
  await using server = await startKilnServe(f.kiln, [
    "--option",
    "secret-key-files",
    f.secretKeyFile,
  ]);
  rows.push(await timeSubstitution(f, "subst-serve", server.url, runs));
  return rows;
}

/** What {@link benchServeThroughput} measured. */
export interface ServeThroughput {
  clients: number;
  narInfoPerSecond: number;
  narMegabytesPerSecond: number;
}

/**
 * `kiln serve` under `clients` concurrent loops on loopback: each fetches narinfos (`rounds`
 * passes over the closure), then every NAR once between them.
 */
export async function benchServeThroughput(
  f: SubstituteBenchFixture,
  options: { clients?: number; rounds?: number } = {},
): Promise<ServeThroughput> {
  const clients = options.clients ?? 16;
  const rounds = options.rounds ?? 4;
  const paths = (await run(KILN, ["store", "path-info", "--recursive", f.top], f.kiln.env)).stdout
    .split("\n").map((line) => line.split(" ")[0]);
  const hashParts = paths.map((p) => p.slice(f.nix.storeDir.length + 1).slice(0, 32));
  await using server = await startKilnServe(f.kiln);
  const narUrls: string[] = [];
  let next = 0;
  let start = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    for (let i = next++; i < hashParts.length * rounds; i = next++) {
      const text = await (await fetch(`${server.url}/${hashParts[i % hashParts.length]}.narinfo`))
        .text();
      if (i < hashParts.length) narUrls.push(/\nURL: (\S+)\n/.exec(text)![1]);
    }
  }));
  const narInfoPerSecond = (hashParts.length * rounds) / ((performance.now() - start) / 1000);
  next = 0;
  let bytes = 0;
  start = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    for (let i = next++; i < narUrls.length; i = next++) {
      for await (const chunk of (await fetch(`${server.url}/${narUrls[i]}`)).body!) {
        bytes += chunk.length;
      }
    }
  }));
  const narMegabytesPerSecond = bytes / 1048576 / ((performance.now() - start) / 1000);
  return { clients, narInfoPerSecond, narMegabytesPerSecond };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      paths: { type: "string", default: "500" },
      megabytes: { type: "string", default: "300" },
      "no-xz": { type: "boolean" },
      runs: { type: "string", default: "1" },
    },
  });
  const prepStart = performance.now();
  using f = await prepareSubstituteBench({
    paths: Number(values.paths),
    megabytes: Number(values.megabytes),
    xz: !values["no-xz"],
  });
  console.log(
    `closure: ${f.paths} paths, ${(f.bytes / 1048576).toFixed(0)} MB (prepared in ${
      ((performance.now() - prepStart) / 1000).toFixed(1)
    } s)`,
  );
  console.log("section            kiln s    nix s   kiln/nix");
  for (const row of await runSubstituteBench(f, Number(values.runs))) {
    const ratio = row.nixMs === undefined ? "" : (row.kilnMs / row.nixMs).toFixed(2);
    console.log(
      `${row.section.padEnd(18)}${(row.kilnMs / 1000).toFixed(2).padStart(7)}  ${
        row.nixMs === undefined ? "      -" : (row.nixMs / 1000).toFixed(2).padStart(7)
      }   ${ratio.padStart(8)}${row.note ? `  ${row.note}` : ""}`,
    );
  }
  for (const clients of [1, 16, 64]) {
    const t = await benchServeThroughput(f, { clients });
    console.log(
      `serve ${String(clients).padStart(2)} clients: ${t.narInfoPerSecond.toFixed(0)} narinfo/s, ${
        t.narMegabytesPerSecond.toFixed(0)
      } MB/s of NAR`,
    );
  }
}
