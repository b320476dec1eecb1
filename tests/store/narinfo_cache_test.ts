import { removeTree } from "../../lib/store/mod.ts";
import { assertEquals } from "../_assert.ts";
import { join } from "node:path";
import { LocalStore, NarInfoDiskCache } from "../../lib/store/mod.ts";

Deno.test("NarInfoDiskCache keeps answers until their TTL and across reopening", () => {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-narinfo-cache-" });
  try {
    const ttls = { positive: 100, negative: 10 };
    let cache = NarInfoDiskCache.open(dir);
    cache.insert("https://c", "aaaa", { narinfo: "StorePath: x\n" }, 1000);
    cache.insert("https://c", "bbbb", {}, 1000);
    assertEquals(cache.lookup("https://c", "aaaa", { ttls, now: 1100 }), {
      narinfo: "StorePath: x\n",
    });
    assertEquals(cache.lookup("https://c", "bbbb", { ttls, now: 1010 }), {});
    assertEquals(cache.lookup("https://c", "bbbb", { ttls, now: 1011 }), undefined);
    assertEquals(cache.lookup("https://c", "aaaa", { ttls, now: 1101 }), undefined);
    assertEquals(cache.lookup("https://other", "aaaa", { ttls, now: 1000 }), undefined);
    cache.close();
    cache = NarInfoDiskCache.open(dir);
    cache.insert("https://c", "bbbb", { narinfo: "now here\n" }, 2000);
    assertEquals(cache.lookup("https://c", "bbbb", { ttls, now: 2000 }), { narinfo: "now here\n" });
    cache.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("LocalStore.queryPathFromHashPart() finds a valid path by its hash part only", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-hashpart-" });
  const store = LocalStore.open({
    storeDir: "/nix/store",
    storeRoot: join(dir, "root"),
    stateDir: join(dir, "state"),
  });
  try {
    const path = await store.addTextToStore("a", "a", []);
    const hashPart = path.slice("/nix/store/".length, "/nix/store/".length + 32);
    assertEquals(store.queryPathFromHashPart(hashPart), path);
    assertEquals(store.queryPathFromHashPart("0".repeat(32)), undefined);
    assertEquals(store.queryPathFromHashPart(hashPart.slice(0, 31)), undefined);
    assertEquals(store.queryPathFromHashPart("z".repeat(32)), undefined);
  } finally {
    store.close();
    removeTree(dir);
  }
});
