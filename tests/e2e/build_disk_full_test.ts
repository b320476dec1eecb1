/**
 * A build that fails because a file system filled up says so, as Nix does, when the store's or
 * the build dir's file system has less than 8 MiB left after the failure: each case runs on a
 * 16 MiB tmpfs (root only; ignored where mounting is not allowed).
 */

import { join } from "node:path";
import { assertEquals, assertStringIncludes } from "../_assert.ts";
import { KilnStore } from "../_kiln.ts";
import { pathExists, removeTree } from "../../lib/store/mod.ts";
import { addAll, DrvSet } from "./_drv.ts";

const NOTE = "note: build failure may have been caused by lack of free disk space";

function run(cmd: string, args: string[]): boolean {
  try {
    return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

function mountTmpfs(dir: string): boolean {
  return run("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", dir]);
}

const canMount = (() => {
  if (Deno.uid() !== 0) return false;
  const dir = Deno.makeTempDirSync({ prefix: "kiln-tmpfs-probe-" });
  const mounted = mountTmpfs(dir);
  if (mounted) run("umount", [dir]);
  Deno.removeSync(dir);
  return mounted;
})();

/**
 * Runs `fn` with a tmpfs of 16 MiB and a kiln store: its store dir on the tmpfs, or (with
 * `buildDirOnTmpfs`) its build dirs there and the store on the ordinary disk.
 */
async function withTmpfs(
  options: { buildDirOnTmpfs: boolean },
  fn: (store: KilnStore, set: DrvSet) => Promise<void>,
): Promise<void> {
  const root = Deno.makeTempDirSync({ prefix: "kiln-disk-full-" });
  const mnt = join(root, "tmpfs");
  Deno.mkdirSync(mnt);
  if (!mountTmpfs(mnt)) throw new Error(`Cannot mount a tmpfs on ${mnt}`);
  try {
    const storeDir = options.buildDirOnTmpfs ? join(root, "store") : join(mnt, "store");
    const store = new KilnStore(storeDir, root);
    store.env.KILN_STORE_ROOT = "/";
    store.env.TMPDIR = options.buildDirOnTmpfs ? mnt : root;
    await fn(store, new DrvSet(storeDir));
  } finally {
    run("umount", [mnt]);
    removeTree(root);
  }
}

for (const buildDirOnTmpfs of [false, true]) {
  const where = buildDirOnTmpfs ? "build dir" : "store";
  Deno.test({
    name: `kiln build notes a full ${where} file system after a failure, registers nothing`,
    ignore: !canMount,
    fn: () =>
      withTmpfs({ buildDirOnTmpfs }, async (store, set) => {
        const target = buildDirOnTmpfs ? "big" : "$out";
        const big = set.add({
          name: "big",
          script: `set -e; /bin/dd if=/dev/zero of=${target} bs=1M count=64; echo done > $out`,
        });
        const small = set.add({ name: "small", script: "echo small > $out" });
        await addAll(store, set);
        const r = await store.run(["build", "--no-sandbox", big.path]);
        // A transient failure, as in Nix: no "build failure" bit in the exit status.
        assertEquals(r.code, 1, r.stderr);
        assertStringIncludes(r.stderr, `builder for '${big.path}' failed with exit code 1`);
        assertStringIncludes(r.stderr, `\n${NOTE}\n`);
        const info = await store.run(["store", "path-info", big.outputs.out]);
        assertEquals(info.code, 1, info.stdout);
        // Space is back once the failed build is cleaned up: the store builds on.
        assertEquals(
          await store.ok(["build", "--no-sandbox", small.path]),
          `${small.outputs.out}\n`,
        );
      }),
  });
}

Deno.test({
  name: "kiln build adds no disk space note when the file systems have room",
  ignore: !canMount,
  fn: () =>
    withTmpfs({ buildDirOnTmpfs: false }, async (store, set) => {
      const fails = set.add({
        name: "fails",
        script: "/bin/dd if=/dev/zero of=$out count=1; exit 1",
      });
      await addAll(store, set);
      const r = await store.run(["build", "--no-sandbox", fails.path]);
      assertEquals(r.code, 100, r.stderr);
      assertEquals(r.stderr.includes(NOTE), false, r.stderr);
    }),
});

Deno.test({
  name: "kiln build collects garbage when less than min-free is left, up to max-free",
  ignore: !canMount,
  fn: () =>
    withTmpfs({ buildDirOnTmpfs: false }, async (store, set) => {
      const first = set.add({ name: "first", script: "echo first > $out" });
      const second = set.add({ name: "second", script: "echo second > $out" });
      await addAll(store, set);
      const file = join(store.root, "big");
      Deno.writeFileSync(file, new Uint8Array(10 * 1024 * 1024));
      const big = (await store.ok(["store", "add", file])).trim(); // 6 MiB left, rooted by none
      // min-free is 0 by default: no collection.
      const plain = await store.run(["build", "--no-sandbox", first.path]);
      assertEquals([plain.code, plain.stdout], [0, `${first.outputs.out}\n`], plain.stderr);
      assertEquals(plain.stderr.includes("auto-GC"), false, plain.stderr);
      assertEquals(pathExists(big), true);

      const limits = ["--option", "min-free", `${8 << 20}`, "--option", "max-free", `${12 << 20}`];
      const r = await store.run(["build", "--no-sandbox", ...limits, second.path]);
      assertEquals([r.code, r.stdout], [0, `${second.outputs.out}\n`], r.stderr);
      assertStringIncludes(r.stderr, "running auto-GC to free ");
      assertEquals(pathExists(big), false);
      assertEquals(pathExists(second.path), true); // the run's derivation: a temporary root
    }),
});
