/**
 * The shared test suite of the `Store` interface: every implementation runs it through a factory.
 * Real Nix is the oracle: each test instantiates a small expression in a throwaway Nix store
 * (text files with references, a derivation with two outputs, a tree of NAR corner cases), copies
 * what it needs into the store under test through the interface alone, and compares paths,
 * metadata, queries and NAR bytes with what Nix says of the same paths.
 */

import { join } from "node:path";
import { parseDerivation } from "../../lib/derivation/mod.ts";
import { decodeNixString, hashBytes, parseHash, storePathHashPart } from "../../lib/hashing/mod.ts";
import { NarMismatchError, type PathInfo, type Store } from "../../lib/store/mod.ts";
import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";
import { makeNarFixture } from "./_nar_fixture.ts";

/** A store under test, on the logical store dir `storeDir`; disposing of it removes it. */
export type StoreFactory = (storeDir: string) => Promise<{ store: Store } & AsyncDisposable>;

const EXPRESSION = `
let a = builtins.toFile "a.txt" "alpha\\n";
    b = builtins.toFile "b.txt" "refers to \${a}\\n";
in derivation {
  name = "demo"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo" ];
  src = b; outputs = [ "out" "dev" ];
}`;

/** What Nix made: the text paths `a` and `b` (b refers to a), the `.drv` (its input is b). */
interface NixPaths {
  a: string;
  b: string;
  drv: string;
  /** A tree of NAR corner cases added as a `source` path. */
  tree: string;
}

interface Fixture {
  nix: NixSandbox;
  store: Store;
  paths: NixPaths;
}

/** Registers the suite's tests, named `<name>: ...`, for the stores `factory` makes. */
export function storeSuite(name: string, factory: StoreFactory): void {
  const test = (title: string, fn: (f: Fixture) => Promise<void>) =>
    Deno.test({
      name: `${name}: ${title}`,
      ignore: !nixAvailable,
      fn: () => withFixture(factory, fn),
    });

  test("addTextToStore() gives Nix's paths; queryPathInfo() says what Nix says", async (f) => {
    const { store, paths } = f;
    for (const path of [paths.a, paths.b]) {
      assertEquals(await copyText(f, path), path);
      assertEquals(
        comparable(await store.queryPathInfo(path)),
        comparable(await nixPathInfo(f.nix, path)),
      );
    }
    assertEquals(await copyText(f, paths.a), paths.a, "adding a valid path again");
    assertEquals(await store.queryPathInfo(`${store.storeDir}/${"0".repeat(32)}-x`), undefined);
  });

  test("addToStore() adds Nix's NAR; narFromPath() gives back nix-store --dump", async (f) => {
    const { store, paths } = f;
    const info = await nixPathInfo(f.nix, paths.tree);
    await store.addToStore(info, await nixDump(f.nix, paths.tree));
    assert(await store.isValidPath(paths.tree));
    assertEquals(comparable(await store.queryPathInfo(paths.tree)), comparable(info));
    // Compared by digest: a diff of two NARs of over 2 MiB is too large to print.
    const nar = await new Response(await store.narFromPath(paths.tree)).bytes();
    const expected = await new Response(await nixDump(f.nix, paths.tree)).bytes();
    assertEquals(hashBytes("sha256", nar).toString("sri"), info.narHash.toString("sri"));
    assertEquals(
      hashBytes("sha256", nar).toString("sri"),
      hashBytes("sha256", expected).toString("sri"),
    );
    // Valid already: nothing changes.
    const before = await store.queryPathInfo(paths.tree);
    await store.addToStore({ ...info, registrationTime: 1 }, await nixDump(f.nix, paths.tree));
    assertEquals(await store.queryPathInfo(paths.tree), before);
  });

  test("addToStore() refuses a NAR that is not info's, or a missing reference", async (f) => {
    const { store, paths } = f;
    const info = await nixPathInfo(f.nix, paths.tree);
    const wrongHash = { ...info, narHash: parseHash(`sha256:${"0".repeat(52)}`) };
    await assertRejects(
      async () => await store.addToStore(wrongHash, await nixDump(f.nix, paths.tree)),
      NarMismatchError,
    );
    await assertRejects(
      async () =>
        await store.addToStore(
          { ...info, narSize: info.narSize - 8 },
          await nixDump(f.nix, paths.tree),
        ),
      NarMismatchError,
    );
    const b = await nixPathInfo(f.nix, paths.b);
    await assertRejects(
      async () => await store.addToStore(b, await nixDump(f.nix, paths.b)),
      RangeError,
      paths.a,
    );
    assertEquals(await store.queryValidPaths([paths.tree, paths.b]), []);
    await store.addToStore(info, await nixDump(f.nix, paths.tree));
    assert(await store.isValidPath(paths.tree), "the refused adds left nothing in the way");
  });

  test("isValidPath() and queryValidPaths() tell added paths from others", async (f) => {
    const { store, paths } = f;
    assert(!await store.isValidPath(paths.a));
    await copyText(f, paths.a);
    assert(await store.isValidPath(paths.a));
    assert(!await store.isValidPath(paths.b));
    const missing = `${store.storeDir}/${"1".repeat(32)}-missing`;
    assertEquals(await store.queryValidPaths([paths.b, paths.a, missing, paths.a]), [paths.a]);
    await copyText(f, paths.b);
    assertEquals(await store.queryValidPaths([paths.b, paths.a]), [paths.a, paths.b].sort());
  });

  test("queryReferences(), queryReferrers(), computeClosure() equal nix-store -q", async (f) => {
    const { store, paths } = f;
    for (const path of [paths.a, paths.b, paths.drv]) await copyText(f, path);
    for (const path of [paths.a, paths.b, paths.drv]) {
      assertEquals(await store.queryReferences(path), await nixQuery(f.nix, "--references", path));
      assertEquals(await store.queryReferrers(path), await nixQuery(f.nix, "--referrers", path));
      assertEquals(await store.computeClosure([path]), await nixQuery(f.nix, "-R", path));
    }
    assertEquals(await store.computeClosure([paths.b, paths.a]), [paths.a, paths.b].sort());
  });

  test("queryDerivationOutputs() equals the outputs Nix recorded for the .drv", async (f) => {
    const { store, paths } = f;
    for (const path of [paths.a, paths.b]) await copyText(f, path);
    const drv = parseDerivation(decodeNixString(Deno.readFileSync(paths.drv)), "demo");
    const outputs = new Map<string, string>();
    for (const [output, value] of drv.outputs) {
      if (value.kind === "inputAddressed") outputs.set(output, value.path);
    }
    assertEquals(await copyText(f, paths.drv, { derivationOutputs: outputs }), paths.drv);
    const shown = JSON.parse(await f.nix.run("nix", ["show-derivation", paths.drv]));
    const expected = Object.entries(shown[paths.drv].outputs as Record<string, { path: string }>)
      .map(([output, value]) => [output, value.path]);
    assertEquals([...(await store.queryDerivationOutputs(paths.drv))].sort(), expected.sort());
    assertEquals(expected.length, 2);
  });

  test("queryPathFromHashPart() finds a valid path by its hash part", async (f) => {
    const { store, paths } = f;
    const hashPart = storePathHashPart(store.storeDir, paths.b);
    assertEquals(await store.queryPathFromHashPart(hashPart), undefined);
    await copyText(f, paths.a);
    await copyText(f, paths.b);
    assertEquals(await store.queryPathFromHashPart(hashPart), paths.b);
    assertEquals(await store.queryPathFromHashPart("0".repeat(32)), undefined);
  });

  test("queries of a path that is not valid fail and name it", async (f) => {
    const { store, paths } = f;
    const queries: [string, (path: string) => Promise<unknown>][] = [
      ["queryReferences", async (p) => await store.queryReferences(p)],
      ["queryReferrers", async (p) => await store.queryReferrers(p)],
      ["computeClosure", async (p) => await store.computeClosure([p])],
      ["queryDerivationOutputs", async (p) => await store.queryDerivationOutputs(p)],
      ["narFromPath", async (p) => await store.narFromPath(p)],
    ];
    for (const [query, run] of queries) {
      const error = await assertRejects(() => run(paths.drv), Error);
      assert(error.message.includes(paths.drv), `${query}: ${error.message}`);
    }
  });
}

async function withFixture(
  factory: StoreFactory,
  fn: (f: Fixture) => Promise<void>,
): Promise<void> {
  const nix = new NixSandbox();
  try {
    const paths = await instantiate(nix);
    await using made = await factory(nix.storeDir);
    await fn({ nix, store: made.store, paths });
  } finally {
    nix.cleanup();
  }
}

async function instantiate(nix: NixSandbox): Promise<NixPaths> {
  const expression = join(nix.root, "demo.nix");
  Deno.writeTextFileSync(expression, EXPRESSION);
  const drv = (await nix.run("nix-instantiate", [expression])).trim();
  const [b] = await nixQuery(nix, "--references", drv);
  const [a] = await nixQuery(nix, "--references", b);
  const tree = join(nix.root, "tree");
  Deno.mkdirSync(tree);
  makeNarFixture(tree);
  const added = (await nix.run("nix-store", ["--add", tree])).trim();
  return { a, b, drv, tree: added };
}

/** Adds Nix's text path `path` with its references, as Nix has it; returns the path made. */
async function copyText(
  f: Fixture,
  path: string,
  options?: { derivationOutputs: Map<string, string> },
): Promise<string> {
  const name = path.slice(f.store.storeDir.length + 34);
  const references = await nixQuery(f.nix, "--references", path);
  return await f.store.addTextToStore(name, Deno.readFileSync(path), references, options);
}

async function nixQuery(nix: NixSandbox, flag: string, path: string): Promise<string[]> {
  const out = await nix.run("nix-store", ["-q", flag, path]);
  return out.split("\n").filter((line) => line !== "").sort();
}

/** Nix's metadata of `path` as a PathInfo (`nix path-info --json`). */
async function nixPathInfo(nix: NixSandbox, path: string): Promise<PathInfo> {
  const [json] = JSON.parse(await nix.run("nix", ["path-info", "--json", path]));
  return {
    path: json.path,
    narHash: parseHash(json.narHash),
    narSize: json.narSize,
    references: [...json.references].sort(),
    registrationTime: json.registrationTime,
    signatures: json.signatures ?? [],
    ca: json.ca,
    ultimate: false,
  };
}

/** The bytes of `nix-store --dump path`, in chunks of 4 KiB as a stream would bring them. */
async function nixDump(nix: NixSandbox, path: string): Promise<ReadableStream<Uint8Array>> {
  const out = await nix.runRaw("nix-store", ["--dump", path]);
  assertEquals(out.code, 0, out.stderr);
  const chunks = [];
  for (let i = 0; i < out.bytes.length; i += 4096) chunks.push(out.bytes.subarray(i, i + 4096));
  return ReadableStream.from(chunks);
}

/** What two stores must agree on of a path (not when each registered it). */
function comparable(info: PathInfo | undefined) {
  assert(info !== undefined, "the path is valid");
  const { path, narHash, narSize, references, ca } = info;
  return { path, narHash: narHash.toString("sri"), narSize, references, ca };
}
