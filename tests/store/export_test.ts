import { join } from "node:path";
import { concatBytes } from "../../lib/hashing/mod.ts";
import {
  exportPaths,
  ExportSyntaxError,
  importPaths,
  LocalStore,
  removeTree,
} from "../../lib/store/mod.ts";
import { assertEquals, assertRejects } from "../_assert.ts";

async function withStores(fn: (from: LocalStore, to: LocalStore) => Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-export-" });
  const open = (name: string) =>
    LocalStore.open({
      storeDir: "/nix/store",
      storeRoot: join(dir, name, "root"),
      stateDir: join(dir, name, "state"),
    });
  const from = open("from");
  const to = open("to");
  try {
    await fn(from, to);
  } finally {
    from.close();
    to.close();
    removeTree(dir);
  }
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const all: Uint8Array[] = [];
  for await (const c of chunks) all.push(c);
  return concatBytes(all);
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  // One byte at a time: every read must cross chunk boundaries.
  for (let i = 0; i < bytes.length; i++) yield bytes.subarray(i, i + 1);
}

function u64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

Deno.test("importPaths() reads and ignores a legacy signature, as Nix does", async () => {
  await withStores(async (from, to) => {
    const path = await from.addTextToStore("hello", "hello\n", []);
    const file = await collect(exportPaths(from, [path]));
    // The path's record ends in "no signature" (0), the file in 0: put a signature in.
    const legacy = concatBytes([u64(1), u64(6), new TextEncoder().encode("legacy\0\0")]);
    const signed = concatBytes([file.subarray(0, file.length - 16), legacy, u64(0)]);
    assertEquals(await importPaths(to, once(signed)), [path]);
    assertEquals(to.queryPathInfo(path)?.narHash, from.queryPathInfo(path)?.narHash);
    assertEquals(to.queryPathInfo(path)?.signatures, []);
  });
});

Deno.test("exportPaths() refuses a path whose files no longer match its NAR hash", async () => {
  await withStores(async (from) => {
    const path = await from.addTextToStore("hello", "hello\n", []);
    const file = from.physicalPath(path);
    Deno.chmodSync(file, 0o644);
    Deno.writeTextFileSync(file, "changed\n");
    await assertRejects(() => collect(exportPaths(from, [path])), Error, "has changed from");
  });
});

Deno.test("importPaths() refuses a wrong magic number and adds nothing", async () => {
  await withStores(async (from, to) => {
    const path = await from.addTextToStore("hello", "hello\n", []);
    const file = await collect(exportPaths(from, [path]));
    // After the NAR: magic, path (8 + 49 bytes padded to 56), no references, no deriver, no
    // signature, the end.
    const narEnd = file.length - (8 + 64 + 8 + 8 + 8 + 8);
    const broken = file.slice();
    broken[narEnd] ^= 1;
    await assertRejects(() => importPaths(to, once(broken)), ExportSyntaxError, "wrong format");
    assertEquals(to.isValidPath(path), false);
  });
});
