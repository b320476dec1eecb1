import { assert, assertEquals, assertMatch, assertStringIncludes } from "../_assert.ts";
import { join } from "node:path";
import { storePathHashPart } from "../../lib/hashing/mod.ts";
import { runGoals } from "../../lib/scheduler/mod.ts";
import { type LocalStore, NarInfoDiskCache } from "../../lib/store/mod.ts";
import {
  BinaryCache,
  copyToBinaryCache,
  fingerprintPath,
  type NarInfo,
  parseNarInfo,
  printNarInfo,
  type SecretKey,
  signFingerprint,
  Substituter,
  type SubstituterOptions,
} from "../../lib/substituter/mod.ts";
import {
  makeClosure,
  makeKeys,
  openTempStore,
  startMemoryServer,
  STORE_DIR,
  type TempStore,
} from "./_cache_fixture.ts";

/** A source store with a closure of `n` paths, copied signed into file caches `dirs`. */
async function makeCaches(
  src: TempStore,
  n: number,
  names: string[],
  options: { secretKey: SecretKey; compression?: "none" | "zstd" },
): Promise<{ paths: string[]; dirs: string[] }> {
  const paths = await makeClosure(src.store, n);
  const dirs = names.map((name) => join(src.dir, name));
  for (const dir of dirs) {
    const cache = BinaryCache.open(`file://${dir}`, { storeDir: STORE_DIR });
    await copyToBinaryCache(src.store, cache, [paths.at(-1)!], {
      secretKeys: [options.secretKey],
      compression: options.compression ?? "none",
    });
  }
  return { paths, dirs };
}

/** Substitutes the closure of `targets` as `kiln build` does: plan, then runGoals. */
async function substituteAll(
  store: LocalStore,
  urls: string[],
  targets: string[],
  options: SubstituterOptions,
) {
  const caches = urls.map((url) => BinaryCache.open(url, { storeDir: STORE_DIR }));
  const substituter = await Substituter.open(store, caches, options);
  const plan = await substituter.planSubstitution(targets);
  const results = await runGoals(plan.graph, targets, {
    build: () => Promise.reject(new Error("no builds here")),
    substitute: (path, signal) => substituter.substitutePath(path, signal),
  });
  return { plan, results };
}

function narInfoFile(dir: string, path: string): string {
  return join(dir, `${storePathHashPart(STORE_DIR, path)}.narinfo`);
}

function editNarInfo(dir: string, path: string, edit: (info: NarInfo) => NarInfo): void {
  const file = narInfoFile(dir, path);
  Deno.writeTextFileSync(
    file,
    printNarInfo(edit(parseNarInfo(Deno.readTextFileSync(file), STORE_DIR, file))),
  );
}

function resign(info: NarInfo, key: SecretKey): NarInfo {
  return { ...info, sigs: [signFingerprint(key, fingerprintPath(info.storePath, info))] };
}

Deno.test("Substituter.planSubstitution() returns the closure's goal graph with references as dependencies", async () => {
  using src = openTempStore();
  using dst = openTempStore();
  const { secretKey, publicKey } = makeKeys();
  const { paths, dirs } = await makeCaches(src, 6, ["cache"], { secretKey });
  // One path is already valid in the destination: it is a valid node, not followed.
  await makeClosure(dst.store, 1);
  const substituter = await Substituter.open(dst.store, [
    BinaryCache.open(`file://${dirs[0]}`, { storeDir: STORE_DIR }),
  ], { trustedKeys: [publicKey] });
  const absent = `${STORE_DIR}/${"1".repeat(32)}-absent`;
  const plan = await substituter.planSubstitution([paths.at(-1)!, paths[0], absent]);
  assertEquals(plan.graph.get(paths[0]), { kind: "substitute", dependencies: [], valid: true });
  for (const path of paths.slice(1)) {
    const refs = src.store.queryPathInfo(path)!.references;
    assertEquals(plan.graph.get(path), { kind: "substitute", dependencies: refs });
    assert(plan.narInfos.get(path)!.narHash.equals(src.store.queryPathInfo(path)!.narHash));
  }
  assertEquals([...plan.missing.keys()], [absent]);
  assertMatch(plan.missing.get(absent)!, /no substituter that can build it/);
});

for (const compression of ["none", "zstd"] as const) {
  Deno.test(`Substituter.substitutePath() imports a ${compression} closure with its metadata`, async () => {
    using src = openTempStore();
    using dst = openTempStore();
    const { secretKey, publicKey } = makeKeys();
    const { paths, dirs } = await makeCaches(src, 8, ["cache"], { secretKey, compression });
    const { results } = await substituteAll(dst.store, [`file://${dirs[0]}`], [paths.at(-1)!], {
      trustedKeys: [publicKey],
    });
    assertEquals([...results.values()].map((r) => r.status), paths.map(() => "substituted"));
    for (const path of paths) {
      const want = src.store.queryPathInfo(path)!;
      const got = dst.store.queryPathInfo(path)!;
      assert(got.narHash.equals(want.narHash));
      assertEquals([got.narSize, got.references, got.ca], [want.narSize, want.references, want.ca]);
      assertEquals(got.ultimate, false);
      assertEquals(got.signatures, [signFingerprint(secretKey, fingerprintPath(path, want))]);
    }
    const run = dst.store.physicalPath(`${paths[0]}/bin/run`);
    assertEquals(Deno.statSync(run).mode! & 0o777, 0o555);
    assertEquals(Deno.readLinkSync(dst.store.physicalPath(`${paths[0]}/link`)), "bin/run");
    assertEquals(dst.entries(), paths.map((p) => p.slice(STORE_DIR.length + 1)).sort());
  });
}

Deno.test("Substituter.open() tries caches by Priority, lower first", async () => {
  using src = openTempStore();
  using dst = openTempStore();
  const { secretKey, publicKey } = makeKeys();
  const { paths, dirs } = await makeCaches(src, 2, ["a", "b"], { secretKey });
  Deno.writeTextFileSync(join(dirs[0], "nix-cache-info"), `StoreDir: ${STORE_DIR}\nPriority: 60\n`);
  Deno.writeTextFileSync(join(dirs[1], "nix-cache-info"), `StoreDir: ${STORE_DIR}\nPriority: 20\n`);
  const urls = dirs.map((d) => `file://${d}`);
  const substituter = await Substituter.open(
    dst.store,
    urls.map((u) => BinaryCache.open(u, { storeDir: STORE_DIR })),
    { trustedKeys: [publicKey] },
  );
  assertEquals(substituter.caches.map((c) => c.url), [urls[1], urls[0]]);
  const found = await substituter.queryNarInfo(paths[1]);
  assert(typeof found !== "string");
  assertEquals(found.cache.url, urls[1]);
});

/** Ways a cache's copy of the tree path can be bad, and what kiln must say. */
const BAD_INPUTS: {
  name: string;
  spoil(dir: string, paths: string[], key: SecretKey): void;
  message: RegExp;
}[] = [
  {
    name: "a NAR whose hash differs from NarHash",
    spoil(dir, paths) {
      const file = join(dir, readNarInfo(dir, paths[0]).url);
      const bytes = Deno.readFileSync(file);
      const at = new TextDecoder().decode(bytes).indexOf("some data");
      bytes[at] = "S".charCodeAt(0);
      Deno.writeFileSync(file, bytes);
    },
    message: /NAR hash mismatch for '.*tree-x': expected sha256-/,
  },
  {
    name: "a NAR longer than NarSize",
    spoil(dir, paths, key) {
      editNarInfo(dir, paths[0], (i) => resign({ ...i, narSize: i.narSize - 8 }, key));
    },
    message: /NAR size mismatch for '.*tree-x': expected \d+, got more/,
  },
  {
    name: "a NAR shorter than NarSize",
    spoil(dir, paths, key) {
      editNarInfo(dir, paths[0], (i) => resign({ ...i, narSize: i.narSize + 8 }, key));
    },
    message: /NAR size mismatch for '.*tree-x': expected \d+, got \d+/,
  },
  {
    name: "a truncated download",
    spoil(dir, paths) {
      const file = join(dir, readNarInfo(dir, paths[0]).url);
      Deno.truncateSync(file, Math.floor(Deno.statSync(file).size / 2));
    },
    message: /Cannot substitute '.*tree-x' from 'file:.*': .*(end|truncated)/i,
  },
  // The fixture's paths are content-addressed, which needs no signature: without their CA field
  // they stand for input-addressed paths, which do.
  {
    name: "a wrong signature",
    spoil(dir, paths) {
      editNarInfo(dir, paths[0], (i) => resign({ ...i, ca: undefined }, makeKeys().secretKey));
    },
    message: /narinfo of '.*tree-x' in binary cache 'file:.*' has no valid signature/,
  },
  {
    name: "no signature",
    spoil(dir, paths) {
      editNarInfo(dir, paths[0], (i) => ({ ...i, sigs: [], ca: undefined }));
    },
    message: /narinfo of '.*tree-x' in binary cache 'file:.*' is not signed/,
  },
  {
    name: "the narinfo of another path",
    spoil(dir, paths) {
      Deno.copyFileSync(narInfoFile(dir, paths[1]), narInfoFile(dir, paths[0]));
    },
    message: /answered for '.*tree-x' with the narinfo of '.*p0-x'/,
  },
  {
    name: "a URL with '..'",
    spoil(dir, paths) {
      editNarInfo(dir, paths[0], (i) => ({ ...i, url: "nar/../../secret.nar" }));
    },
    message: /URL 'nar\/\.\.\/\.\.\/secret\.nar' has the path segment '\.\.'/,
  },
];

function readNarInfo(dir: string, path: string): NarInfo {
  const file = narInfoFile(dir, path);
  return parseNarInfo(Deno.readTextFileSync(file), STORE_DIR, file);
}

for (const bad of BAD_INPUTS) {
  Deno.test(`Substituter.substitutePath() rejects ${bad.name} and tries the next cache`, async () => {
    using src = openTempStore();
    const { secretKey, publicKey } = makeKeys();
    const { paths, dirs } = await makeCaches(src, 3, ["bad", "good"], { secretKey });
    bad.spoil(dirs[0], paths, secretKey);
    const [badUrl, goodUrl] = [`file://${dirs[0]}?priority=10`, `file://${dirs[1]}?priority=20`];
    const options = { trustedKeys: [publicKey], onWarning: (w: string) => warnings.push(w) };
    const warnings: string[] = [];
    {
      // Only the bad cache: the path fails with a message naming it and the cache.
      using dst = openTempStore();
      const before = dst.entries();
      const { results } = await substituteAll(dst.store, [badUrl], [paths[0]], options);
      const result = results.get(paths[0])!;
      assert(result.status === "failed");
      assertMatch(result.message, bad.message);
      assertEquals(dst.store.isValidPath(paths[0]), false);
      assertEquals(dst.entries(), before);
    }
    {
      // Bad cache first, then a good one: the good one is used.
      using dst = openTempStore();
      const { results } = await substituteAll(
        dst.store,
        [badUrl, goodUrl],
        [paths.at(-1)!],
        options,
      );
      assertEquals([...results.values()].every((r) => r.status === "substituted"), true);
      assert(
        dst.store.queryPathInfo(paths[0])!.narHash.equals(
          src.store.queryPathInfo(paths[0])!.narHash,
        ),
      );
      assertEquals(dst.entries(), paths.map((p) => p.slice(STORE_DIR.length + 1)).sort());
    }
  });
}

Deno.test("Substituter accepts unsigned narinfos when requireSigs is false", async () => {
  using src = openTempStore();
  using dst = openTempStore();
  const { secretKey } = makeKeys();
  const { paths, dirs } = await makeCaches(src, 3, ["cache"], { secretKey });
  editNarInfo(dirs[0], paths[0], (i) => ({ ...i, sigs: [] }));
  const { results } = await substituteAll(dst.store, [`file://${dirs[0]}`], [paths.at(-1)!], {
    requireSigs: false,
  });
  assertEquals([...results.values()].every((r) => r.status === "substituted"), true);
});

Deno.test("Substituter skips an unreachable cache with one warning", async () => {
  using src = openTempStore();
  using dst = openTempStore();
  const { secretKey, publicKey } = makeKeys();
  const { paths, dirs } = await makeCaches(src, 4, ["cache"], { secretKey });
  const server = startMemoryServer();
  server.files.set("nix-cache-info", new TextEncoder().encode(`StoreDir: ${STORE_DIR}\n`));
  // A privileged port that no test listens on (and fetch allows): a port freed by closing a
  // listener could be taken by another test running meanwhile.
  const closedUrl = "http://127.0.0.1:2";
  const warnings: string[] = [];
  const caches = [
    BinaryCache.open(`${server.url}?priority=1`, { storeDir: STORE_DIR }),
    BinaryCache.open(closedUrl, { storeDir: STORE_DIR }),
    BinaryCache.open(`file://${dirs[0]}`, { storeDir: STORE_DIR }),
  ];
  const substituter = await Substituter.open(dst.store, caches, {
    trustedKeys: [publicKey],
    onWarning: (w) => warnings.push(w),
  });
  assertEquals(warnings.length, 1);
  assertStringIncludes(warnings[0], `binary cache '${closedUrl}' is not reachable`);
  await server[Symbol.asyncDispose](); // goes away after nix-cache-info
  const plan = await substituter.planSubstitution([paths.at(-1)!]);
  assertEquals(plan.missing.size, 0);
  assertEquals(warnings.length, 2);
  assertStringIncludes(warnings[1], `binary cache '${server.url}' is not reachable`);
  assertEquals(substituter.caches.map((c) => c.url), [`file://${dirs[0]}`]);
});

Deno.test("Substituter skips a cache that does not answer within the connect timeout", async () => {
  using dst = openTempStore();
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 }); // never answers
  const url = `http://127.0.0.1:${listener.addr.port}`;
  const warnings: string[] = [];
  const substituter = await Substituter.open(
    dst.store,
    [BinaryCache.open(url, { storeDir: STORE_DIR, connectTimeoutMs: 100 })],
    { onWarning: (w) => warnings.push(w) },
  );
  assertEquals(substituter.caches, []);
  assertMatch(warnings[0], /is not reachable \(.*no answer within 100 ms\)/);
});

Deno.test("Substituter keeps remote narinfo answers, positive and negative, in the disk cache", async () => {
  using src = openTempStore();
  using dst = openTempStore();
  const { secretKey, publicKey } = makeKeys();
  const paths = await makeClosure(src.store, 3);
  await using server = startMemoryServer();
  const open = () => BinaryCache.open(server.url, { storeDir: STORE_DIR });
  await copyToBinaryCache(src.store, open(), [paths.at(-1)!], { secretKeys: [secretKey] });
  const disk = NarInfoDiskCache.open(join(dst.dir, "state"));
  try {
    const absent = `${STORE_DIR}/${"2".repeat(32)}-absent`;
    let now = 1_000_000;
    const plan = async () => {
      server.requests.length = 0;
      const s = await Substituter.open(dst.store, [open()], {
        trustedKeys: [publicKey],
        diskCache: disk,
        now: () => now,
        ttls: { positive: 1000, negative: 10 },
      });
      await s.planSubstitution([paths.at(-1)!, absent]);
      return server.requests.filter((r) => r.path.endsWith(".narinfo")).length;
    };
    assertEquals(await plan(), 4);
    assertEquals(await plan(), 0);
    now += 11; // the negative answer expired, the positive ones did not
    assertEquals(await plan(), 1);
    now += 1000;
    assertEquals(await plan(), 4);
  } finally {
    disk.close();
  }
});
