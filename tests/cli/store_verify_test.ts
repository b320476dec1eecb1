import { join } from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { KilnStore } from "../_kiln.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";
import { lines } from "./_closure.ts";

/** The same small closure in a Nix store and a kiln store of the same store dir. */
interface Fixture {
  nix: NixSandbox;
  kiln: KilnStore;
  /** A single file, the same bytes as `tree/d/same`. */
  file: string;
  /** A tree with duplicate files, an executable twin, symlinks. */
  tree: string;
  /** A text file referring to `file` and `tree`. */
  top: string;
}

async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const nix = new NixSandbox();
  const kiln = new KilnStore(nix.storeDir);
  try {
    const src = join(nix.root, "src");
    const big = "x".repeat(300_000);
    Deno.mkdirSync(join(src, "tree/d/e"), { recursive: true });
    Deno.writeTextFileSync(join(src, "file"), big);
    Deno.writeTextFileSync(join(src, "tree/same"), big);
    Deno.writeTextFileSync(join(src, "tree/d/same"), big);
    Deno.writeTextFileSync(join(src, "tree/d/e/exec"), big, { mode: 0o755 });
    Deno.writeTextFileSync(join(src, "tree/d/other"), "other\n");
    Deno.writeTextFileSync(join(src, "tree/d/e/other"), "other\n");
    Deno.writeTextFileSync(join(src, "tree/empty"), "");
    Deno.symlinkSync("target", join(src, "tree/link"));
    Deno.symlinkSync("target", join(src, "tree/d/link"));
    const [file, tree] = lines(
      await nix.run("nix-store", ["--add", join(src, "file"), join(src, "tree")]),
    );
    const expr =
      `builtins.toFile "top" "\${builtins.storePath ${file}} \${builtins.storePath ${tree}}"`;
    const top = JSON.parse(
      await nix.run("nix-instantiate", ["--eval", "--read-write-mode", "--expr", expr]),
    ) as string;
    const nar = await nix.runRaw("nix-store", ["--export", file, tree, top]);
    await kiln.ok(["store", "import"], nar.bytes);
    await fn({ nix, kiln, file, tree, top });
  } finally {
    kiln.cleanup();
    nix.cleanup();
  }
}

/** The physical store dir of each side: where `.links` is. */
function physicalStore(f: Fixture, side: "nix" | "kiln"): string {
  return side === "nix" ? f.nix.storeDir : f.kiln.physical(f.nix.storeDir);
}

/** Stderr with kiln's physical store dir written as Nix's. */
function sameDirs(f: Fixture, text: string): string {
  return text.replaceAll(physicalStore(f, "kiln"), f.nix.storeDir);
}

async function both(f: Fixture, kilnArgs: string[], nixArgs: string[]) {
  const [kiln, nix] = await Promise.all([
    f.kiln.run(kilnArgs),
    f.nix.runRaw("nix-store", nixArgs),
  ]);
  return { kiln: { ...kiln, stderr: sameDirs(f, kiln.stderr) }, nix };
}

/** Makes the file at `file` (read-only, as store files are) hold `text` instead. */
function corrupt(file: string, text: string): void {
  Deno.chmodSync(file, 0o644);
  Deno.writeTextFileSync(file, text);
  Deno.chmodSync(file, 0o444);
}

Deno.test({
  name: "kiln store optimise links and frees what nix-store --optimise does, and only once",
  ignore: !nixAvailable,
  fn: () =>
    withFixture(async (f) => {
      const first = await both(f, ["store", "optimise"], ["--optimise"]);
      assertEquals(first.kiln.code, 0, first.kiln.stderr);
      assertEquals(first.nix.code, 0);
      assertEquals(first.kiln.stderr, "0.57 MiB freed by hard-linking 4 files\n");
      assertEquals(first.kiln.stderr, first.nix.stderr);
      for (const side of ["nix", "kiln"] as const) {
        const store = physicalStore(f, side);
        const ino = (p: string) => Deno.lstatSync(join(store, p)).ino;
        const tree = f.tree.slice(f.nix.storeDir.length + 1);
        const file = f.file.slice(f.nix.storeDir.length + 1);
        assertEquals(ino(`${tree}/same`), ino(file), side);
        assertEquals(ino(`${tree}/d/same`), ino(file), side);
        assertEquals(ino(`${tree}/d/link`), ino(`${tree}/link`), side);
        assert(ino(`${tree}/d/e/exec`) !== ino(file), side);
      }
      const links = (side: "nix" | "kiln") =>
        Array.from(Deno.readDirSync(join(physicalStore(f, side), ".links")), (e) => e.name).sort();
      assertEquals(links("kiln"), links("nix"));
      const again = await both(f, ["store", "optimise"], ["--optimise"]);
      assertEquals(again.kiln.stderr, "0.00 MiB freed by hard-linking 0 files\n");
      assertEquals(again.kiln.stderr, again.nix.stderr);
      // The trees are still what the database says, modes and times included.
      const verify = await both(f, ["store", "verify", "--check-contents"], [
        "--verify",
        "--check-contents",
      ]);
      assertEquals([verify.kiln.code, verify.nix.code], [0, 0], verify.kiln.stderr);
      assertEquals(verify.kiln.stderr, verify.nix.stderr);
    }),
});

Deno.test({
  name: "kiln store verify --check-contents names a modified path and link, exit 1, as Nix",
  ignore: !nixAvailable,
  fn: () =>
    withFixture(async (f) => {
      await both(f, ["store", "optimise"], ["--optimise"]);
      const plain = await both(f, ["store", "verify"], ["--verify"]);
      assertEquals([plain.kiln.code, plain.nix.code], [0, 0]);
      assertEquals(plain.kiln.stderr, plain.nix.stderr);
      for (const side of ["nix", "kiln"] as const) {
        corrupt(
          join(physicalStore(f, side), f.tree.slice(f.nix.storeDir.length + 1), "d/other"),
          "bad\n",
        );
      }
      // Existence alone does not look at contents.
      assertEquals((await f.kiln.run(["store", "verify"])).code, 0);
      const r = await both(f, ["store", "verify", "--check-contents"], [
        "--verify",
        "--check-contents",
      ]);
      assertEquals([r.kiln.code, r.nix.code], [1, 1]);
      assertEquals(r.kiln.stderr, r.nix.stderr);
      assert(r.kiln.stderr.includes(`path '${f.tree}' was modified! expected hash 'sha256:`));
      assert(r.kiln.stderr.includes("/.links/"));
      assert(!r.kiln.stderr.includes(`path '${f.file}'`));
      // Only the paths named.
      const one = await f.kiln.run(["store", "verify", "--check-contents", f.file]);
      assertEquals(one.code, 0, one.stderr);
      const other = await f.kiln.run(["store", "verify", "--check-contents", f.top, f.tree]);
      assertEquals(other.code, 1);
      assert(other.stderr.includes(`path '${f.tree}' was modified!`));
      // --repair removes the corrupt link (as Nix), but cannot put the path right.
      const repair = await both(f, ["store", "verify", "--check-contents", "--repair"], [
        "--verify",
        "--check-contents",
        "--repair",
      ]);
      assert(repair.kiln.stderr.includes("removed link '"), repair.kiln.stderr);
      assert(repair.nix.stderr.includes("removed link '"), repair.nix.stderr);
      assertEquals(repair.kiln.code, 1);
    }),
});

Deno.test({
  name:
    "kiln store verify drops a vanished path nothing refers to, and names one still referred to",
  ignore: !nixAvailable,
  fn: () =>
    withFixture(async (f) => {
      for (const side of ["nix", "kiln"] as const) {
        const store = physicalStore(f, side);
        for (const p of [f.top, f.file]) {
          Deno.removeSync(join(store, p.slice(f.nix.storeDir.length + 1)));
        }
      }
      const r = await both(f, ["store", "verify"], ["--verify"]);
      assertEquals([r.kiln.code, r.nix.code], [0, 0]);
      assertEquals(r.kiln.stderr, r.nix.stderr);
      assert(r.kiln.stderr.includes(`path '${f.file}' disappeared, removing from database...`));
      assertEquals((await f.kiln.run(["store", "path-info", f.file])).code, 1);
      assertEquals(lines(await f.kiln.ok(["store", "path-info", f.tree])).length, 1);
    }),
});

Deno.test({
  name: "kiln store verify exits 1 naming a vanished path that a valid path refers to",
  ignore: !nixAvailable,
  fn: () =>
    withFixture(async (f) => {
      for (const side of ["nix", "kiln"] as const) {
        const store = physicalStore(f, side);
        Deno.removeSync(join(store, f.file.slice(f.nix.storeDir.length + 1)));
      }
      const r = await both(f, ["store", "verify"], ["--verify"]);
      assertEquals([r.kiln.code, r.nix.code], [1, 1]);
      assertEquals(r.kiln.stderr, r.nix.stderr);
      assert(
        r.kiln.stderr.includes(`path '${f.file}' disappeared, but it still has valid referrers!`),
      );
      assert(r.kiln.stderr.endsWith("warning: not all store errors were fixed\n"));
    }),
});

Deno.test({
  name: "kiln store verify --repair fetches modified and vanished paths again from a substituter",
  ignore: !nixAvailable,
  fn: () =>
    withFixture(async (f) => {
      const cache = join(f.nix.root, "cache");
      await f.nix.run("nix", ["copy", "--to", `file://${cache}`, f.top]);
      const store = physicalStore(f, "kiln");
      corrupt(join(store, f.tree.slice(f.nix.storeDir.length + 1), "d/other"), "bad\n");
      Deno.removeSync(join(store, f.file.slice(f.nix.storeDir.length + 1)));
      const verify = ["store", "verify", "--check-contents", "--repair"];
      // Without a substituter nothing can be put right.
      const none = await f.kiln.run(verify);
      assertEquals(none.code, 1);
      assert(none.stderr.includes(`error: cannot repair path '${f.file}'`), none.stderr);
      const options = ["--option", "substituters", `file://${cache}`];
      const r = await f.kiln.run([...verify, ...options, "--option", "require-sigs", "false"]);
      assertEquals(r.code, 0, r.stderr);
      assert(r.stderr.includes(`path '${f.file}' disappeared, but it still has valid referrers!`));
      assert(r.stderr.includes(`path '${f.tree}' was modified!`));
      const again = await f.kiln.run(["store", "verify", "--check-contents"]);
      assertEquals(again.code, 0, again.stderr);
      assertEquals(
        Deno.readTextFileSync(join(store, f.tree.slice(f.nix.storeDir.length + 1), "d/other")),
        "other\n",
      );
    }),
});

Deno.test({
  name: "auto-optimise-store links the files of each new path as it is added, as in Nix",
  ignore: !nixAvailable,
  fn: async () => {
    const nix = new NixSandbox("auto-optimise-store = true\n");
    const kiln = new KilnStore(nix.storeDir);
    try {
      const src = join(nix.root, "src");
      for (const dir of ["one", "two"]) {
        Deno.mkdirSync(join(src, dir), { recursive: true });
        Deno.writeTextFileSync(join(src, dir, "same"), "the same bytes\n");
        Deno.writeTextFileSync(join(src, dir, "own"), `${dir}\n`);
      }
      const dirs = [join(src, "one"), join(src, "two")];
      const paths = lines(await nix.run("nix-store", ["--add", ...dirs]));
      const options = ["--option", "auto-optimise-store", "true"];
      assertEquals(lines(await kiln.ok(["store", "add", ...options, ...dirs])), paths);
      for (const physical of [(p: string) => p, (p: string) => kiln.physical(p)]) {
        const ino = (path: string, file: string) => Deno.lstatSync(join(physical(path), file)).ino;
        assertEquals(ino(paths[0], "same"), ino(paths[1], "same"));
        assert(ino(paths[0], "own") !== ino(paths[1], "own"));
      }
      assertEquals(
        (await kiln.run(["store", "optimise"])).stderr,
        "0.00 MiB freed by hard-linking 0 files\n",
      );
      assertEquals((await kiln.run(["store", "verify", "--check-contents"])).code, 0);
    } finally {
      kiln.cleanup();
      nix.cleanup();
    }
  },
});
