import { assert, assertEquals, assertRejects, assertThrows } from "../_assert.ts";
import { join } from "node:path";
import { createHasher, storePathHashPart } from "../../lib/hashing/mod.ts";
import { dumpPath } from "../../lib/store/mod.ts";
import {
  BinaryCache,
  copyToBinaryCache,
  fingerprintPath,
  parseCacheInfo,
  verifySignatures,
  type WritableCompressionMethod,
} from "../../lib/substituter/mod.ts";
import {
  makeClosure,
  makeKeys,
  openTempStore,
  startMemoryServer,
  STORE_DIR,
} from "./_cache_fixture.ts";

async function narBytes(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function sha256(bytes: Uint8Array) {
  const h = createHasher("sha256");
  h.update(bytes);
  return h.digest();
}

/** The same checks against a file:// cache and an HTTP one. */
const BACKENDS: { name: string; open(dir: string): Promise<{ url: string } & AsyncDisposable> }[] =
  [
    {
      name: "file://",
      open: (dir) =>
        Promise.resolve({ url: `file://${dir}/cache`, [Symbol.asyncDispose]: async () => {} }),
    },
    { name: "http:// (PUT)", open: () => Promise.resolve(startMemoryServer()) },
  ];

for (const backend of BACKENDS) {
  for (const method of ["zstd", "xz", "none"] as WritableCompressionMethod[]) {
    Deno.test(`copyToBinaryCache() writes a ${method} cache over ${backend.name} that reads back`, async () => {
      using src = openTempStore();
      await using server = await backend.open(src.dir);
      const paths = await makeClosure(src.store, 5);
      const top = paths.at(-1)!;
      const { secretKey, publicKey } = makeKeys();
      const cache = BinaryCache.open(`${server.url}?compression=${method}`, {
        storeDir: STORE_DIR,
      });
      const copied: string[] = [];
      const report = await copyToBinaryCache(src.store, cache, [top], {
        secretKeys: [secretKey],
        onCopied: (p) => copied.push(p),
      });
      assertEquals(report.copied.sort(), [...paths].sort());
      assertEquals(report.skipped, []);
      // A narinfo is written only after those of its references.
      for (const path of paths) {
        const info = src.store.queryPathInfo(path)!;
        for (const ref of info.references) assert(copied.indexOf(ref) < copied.indexOf(path));
      }
      const reader = BinaryCache.open(server.url, { storeDir: STORE_DIR });
      assertEquals((await reader.cacheInfo()).storeDir, STORE_DIR);
      for (const path of paths) {
        const info = (await reader.readNarInfo(path))!;
        const local = src.store.queryPathInfo(path)!;
        assertEquals(info.compression, method);
        assert(info.url.startsWith(`nar/${info.fileHash!.toString("nix32")}.nar`));
        assert(info.narHash.equals(local.narHash));
        assertEquals(info.references, local.references);
        assertEquals(info.ca, local.ca);
        assert(verifySignatures(fingerprintPath(path, info), info.sigs, [publicKey]));
        const nar = await narBytes((await reader.readNar(info)).nar);
        assertEquals(nar, await narBytes(dumpPath(src.store.physicalPath(path))));
      }
      const again = await copyToBinaryCache(src.store, cache, [top]);
      assertEquals(again.copied, []);
      assertEquals(again.skipped.length, paths.length);
    });
  }
}

Deno.test("copyToBinaryCache() names NARs by file hash and skips paths the cache has", async () => {
  using src = openTempStore();
  const paths = await makeClosure(src.store, 3);
  const dir = join(src.dir, "cache");
  const cache = BinaryCache.open(`file://${dir}`, { storeDir: STORE_DIR });
  const first = await copyToBinaryCache(src.store, cache, [paths[1]], { recursive: false });
  assertEquals(first.copied, [paths[1]]);
  const nars = [...Deno.readDirSync(join(dir, "nar"))].map((e) => e.name);
  assertEquals(nars.length, 1);
  const bytes = Deno.readFileSync(join(dir, "nar", nars[0]));
  assertEquals(`${sha256(bytes).toString("nix32")}.nar.zst`, nars[0]);
  assertEquals(parseCacheInfo(Deno.readTextFileSync(join(dir, "nix-cache-info")), dir), {
    storeDir: STORE_DIR,
  });
  const second = await copyToBinaryCache(src.store, cache, [paths[2]]);
  assertEquals(second.skipped, [paths[1]]);
  assertEquals(second.copied.sort(), [paths[0], paths[2]].sort());
  assertEquals([...Deno.readDirSync(dir)].filter((e) => e.name.startsWith(".")), []);
});

Deno.test("copyToBinaryCache() refuses invalid paths and another store dir", async () => {
  using src = openTempStore();
  const cache = BinaryCache.open(`file://${src.dir}/cache`, { storeDir: STORE_DIR });
  await assertRejects(
    () => copyToBinaryCache(src.store, cache, [`${STORE_DIR}/${"a".repeat(32)}-nope`]),
    RangeError,
    "is not valid",
  );
  const other = BinaryCache.open(`file://${src.dir}/cache`, { storeDir: "/other/store" });
  await assertRejects(() => copyToBinaryCache(src.store, other, []), RangeError, "store dir");
});

Deno.test("BinaryCache.open() rejects unknown schemes, parameters and relative file URLs", () => {
  const o = { storeDir: STORE_DIR };
  assertThrows(() => BinaryCache.open("s3://bucket", o), TypeError, "unsupported scheme");
  assertThrows(() => BinaryCache.open("file:///x?foo=1", o), TypeError, "unknown parameter 'foo'");
  assertThrows(() => BinaryCache.open("file:///x?compression=lz4", o), SyntaxError, "lz4");
  assertThrows(() => BinaryCache.open("file:///x?priority=high", o), TypeError, "priority");
  assertThrows(() => BinaryCache.open("not a url", o), TypeError, "is not a URL");
  const cache = BinaryCache.open("https://example.org/c/?priority=10&compression=xz", o);
  assertEquals(cache.url, "https://example.org/c");
  assertEquals(cache.params, { priority: 10, compression: "xz" });
});

Deno.test("BinaryCache.cacheInfo() refuses a cache for another store dir", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(join(dir, "nix-cache-info"), "StoreDir: /gnu/store\nPriority: 7\n");
    const cache = BinaryCache.open(`file://${dir}`, { storeDir: STORE_DIR });
    await assertRejects(() => cache.cacheInfo(), RangeError, "'/gnu/store'");
    const ok = BinaryCache.open(`file://${dir}?priority=3`, { storeDir: "/gnu/store" });
    assertEquals(await ok.priority(), 3);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("BinaryCache.readNarInfo() rejects a narinfo that describes another path", async () => {
  using src = openTempStore();
  const [a, b] = await makeClosure(src.store, 2);
  const dir = join(src.dir, "cache");
  const cache = BinaryCache.open(`file://${dir}`, { storeDir: STORE_DIR });
  await copyToBinaryCache(src.store, cache, [a]);
  Deno.copyFileSync(
    join(dir, `${storePathHashPart(STORE_DIR, a)}.narinfo`),
    join(dir, `${storePathHashPart(STORE_DIR, b)}.narinfo`),
  );
  await assertRejects(() => cache.readNarInfo(b), RangeError, `with the narinfo of '${a}'`);
  assertEquals(await cache.readNarInfo(`${STORE_DIR}/${"0".repeat(32)}-absent`), undefined);
});
