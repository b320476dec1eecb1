import { join } from "node:path";
import { lockGc, readTempRoots, TempRoots } from "../../lib/store/temp_roots.ts";
import { removeTree } from "../../lib/store/mod.ts";
import { assertEquals } from "../_assert.ts";
import { lockWaiters, waitFor } from "../_process.ts";

const A = "/nix/store/00000000000000000000000000000000-a";
const B = "/nix/store/11111111111111111111111111111111-b";

function withStateDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = Deno.makeTempDirSync({ prefix: "kiln-temproots-" });
    try {
      await fn(dir);
    } finally {
      removeTree(dir);
    }
  };
}

Deno.test(
  "readTempRoots() reads a live process's roots and deletes a file nobody holds",
  withStateDir(async (dir) => {
    const roots = new TempRoots(dir);
    try {
      await roots.add([A, A]);
      await roots.add([B]);
      assertEquals(readTempRoots(dir), new Map([[A, [Deno.pid]], [B, [Deno.pid]]]));
      assertEquals(Deno.readTextFileSync(join(dir, "temproots", String(Deno.pid))), `${A}\0${B}\0`);
      // A file whose process is gone: its lock is free.
      Deno.writeTextFileSync(join(dir, "temproots", "4194305"), `${B}\0`);
      assertEquals(readTempRoots(dir), new Map([[A, [Deno.pid]], [B, [Deno.pid]]]));
      assertEquals([...Deno.readDirSync(join(dir, "temproots"))].length, 1);
    } finally {
      roots.close();
    }
    assertEquals(readTempRoots(dir), new Map());
    assertEquals([...Deno.readDirSync(join(dir, "temproots"))], []);
  }),
);

Deno.test(
  "TempRoots.add() waits while a collector holds the GC lock",
  withStateDir(async (dir) => {
    const roots = new TempRoots(dir);
    try {
      const gc = await lockGc(dir, true);
      const adding = roots.add([A]);
      await waitFor("add() to wait for the GC lock", () => lockWaiters(dir) > 0);
      assertEquals(readTempRoots(dir), new Map());
      gc[Symbol.dispose]();
      await adding;
      assertEquals(readTempRoots(dir), new Map([[A, [Deno.pid]]]));
    } finally {
      roots.close();
    }
  }),
);

Deno.test(
  "TempRoots of two stores of one process share the process's file until both close",
  withStateDir(async (dir) => {
    const first = new TempRoots(dir);
    const second = new TempRoots(dir);
    await first.add([A]);
    await second.add([A, B]);
    assertEquals(readTempRoots(dir), new Map([[A, [Deno.pid]], [B, [Deno.pid]]]));
    first.close();
    assertEquals(readTempRoots(dir), new Map([[A, [Deno.pid]], [B, [Deno.pid]]]));
    second.close();
    assertEquals(readTempRoots(dir), new Map());
  }),
);
