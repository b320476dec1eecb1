import { assert, assertEquals, assertMatch } from "../_assert.ts";
import { createHasher, storePathHashPart } from "../../lib/hashing/mod.ts";
import { runGoals } from "../../lib/scheduler/mod.ts";
import {
  BinaryCache,
  createCacheHandler,
  fingerprintPath,
  parseCacheInfo,
  parseNarInfo,
  serveBinaryCache,
  Substituter,
  verifySignatures,
  type WritableCompressionMethod,
} from "../../lib/substituter/mod.ts";
import { makeClosure, makeKeys, openTempStore, STORE_DIR } from "./_cache_fixture.ts";

Deno.test("createCacheHandler() serves nix-cache-info, signed narinfos and NARs", async () => {
  using src = openTempStore();
  const paths = await makeClosure(src.store, 3);
  const { secretKey, publicKey } = makeKeys();
  const handle = createCacheHandler(src.store, { secretKeys: [secretKey] });
  const get = (name: string, method = "GET") =>
    handle(new Request(`http://cache.local/${name}`, { method }));
  assertEquals(
    parseCacheInfo(await get("nix-cache-info").text(), "serve"),
    { storeDir: STORE_DIR, wantMassQuery: true, priority: 30 },
  );
  for (const path of paths) {
    const hashPart = storePathHashPart(STORE_DIR, path);
    const response = get(`${hashPart}.narinfo`);
    assertEquals(response.headers.get("content-type"), "text/x-nix-narinfo");
    const info = parseNarInfo(await response.text(), STORE_DIR, "served");
    const local = src.store.queryPathInfo(path)!;
    assertEquals(info.url, `nar/${hashPart}-${local.narHash.toString("nix32")}.nar`);
    assertEquals([info.compression, info.narSize, info.references], [
      "none",
      local.narSize,
      local.references,
    ]);
    assert(verifySignatures(fingerprintPath(path, info), info.sigs, [publicKey]));
    const head = get(info.url, "HEAD");
    assertEquals(head.headers.get("content-length"), String(local.narSize));
    const hasher = createHasher("sha256");
    hasher.update(new Uint8Array(await get(info.url).arrayBuffer()));
    assert(hasher.digest().equals(local.narHash));
  }
  const hashPart = storePathHashPart(STORE_DIR, paths[0]);
  assertEquals(get(`${"0".repeat(32)}.narinfo`).status, 404);
  assertEquals(get(`${hashPart}.narinfo/x`).status, 404);
  assertEquals(get(`nar/${hashPart}-${"1".repeat(52)}.nar`).status, 404);
  assertEquals(get(`nar/${hashPart}-${"1".repeat(52)}.nar.xz`).status, 404);
  assertEquals(get("%E0%A4%A").status, 404);
  assertEquals(get("nix-cache-info", "PUT").status, 405);
  assertEquals(get("log/x.drv").status, 404);
});

for (const compression of ["none", "zstd"] as WritableCompressionMethod[]) {
  Deno.test(`serveBinaryCache() (${compression}) is a cache kiln substitutes from, many clients at once`, async () => {
    using src = openTempStore();
    using dst = openTempStore();
    const paths = await makeClosure(src.store, 12);
    const { secretKey, publicKey } = makeKeys();
    const stop = new AbortController();
    const server = serveBinaryCache(src.store, {
      hostname: "127.0.0.1",
      port: 0,
      signal: stop.signal,
      secretKeys: [secretKey],
      compression,
    });
    try {
      const url = `http://127.0.0.1:${server.addr.port}`;
      const substituter = await Substituter.open(dst.store, [
        BinaryCache.open(url, { storeDir: STORE_DIR }),
      ], { trustedKeys: [publicKey] });
      const plan = await substituter.planSubstitution([paths.at(-1)!]);
      const results = await runGoals(plan.graph, [paths.at(-1)!], {
        build: () => Promise.reject(new Error("no builds")),
        substitute: (p, signal) => substituter.substitutePath(p, signal),
      });
      assertEquals([...results.values()].filter((r) => r.status === "substituted").length, 12);
      for (const path of paths) {
        assert(
          dst.store.queryPathInfo(path)!.narHash.equals(src.store.queryPathInfo(path)!.narHash),
        );
      }
      const texts = await Promise.all(
        Array.from(
          { length: 50 },
          (_, i) =>
            fetch(`${url}/${storePathHashPart(STORE_DIR, paths[i % 12])}.narinfo`).then((r) =>
              r.text()
            ),
        ),
      );
      for (const text of texts) assertMatch(text, /^StorePath: /);
    } finally {
      stop.abort();
      await server.finished;
    }
  });
}
