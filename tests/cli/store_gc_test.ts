import { join } from "node:path";
import { hashPath, LocalStore } from "../../lib/store/mod.ts";
import { assertEquals } from "../_assert.ts";
import { KilnStore } from "../_kiln.ts";
import { waitFor } from "../_process.ts";
import { closureIgnored, lines, withClosure } from "./_closure.ts";

Deno.test({
  name: "kiln store gc --print-dead/--print-live name the paths nix-store --gc names",
  ignore: closureIgnored,
  fn: () =>
    withClosure(async (nix, kiln, c) => {
      /** Compares both sets; returns the dead one. */
      const compare = async (what: string, options: string[] = []) => {
        const sets: string[][] = [];
        for (const flag of ["--print-dead", "--print-live"]) {
          const [want, got] = await Promise.all([
            nix.run("nix-store", ["--gc", flag, ...options]),
            kiln.ok(["store", "gc", flag, ...options]),
          ]);
          assertEquals(lines(got).sort(), lines(want).sort(), `${what} ${flag}`);
          sets.push(lines(want));
        }
        return sets[0];
      };
      // Files of no valid path (a collector's leftovers) are dead too.
      for (const dir of [nix.storeDir, kiln.physical(nix.storeDir)]) {
        Deno.mkdirSync(join(dir, "00000000000000000000000000000000-leftover"));
      }
      assertEquals((await compare("no roots")).length, 13); // 5 derivations, 7 outputs, leftover
      // A direct root (a symlink under gcroots into the store), and indirect ones.
      for (const state of [nix.env.NIX_STATE_DIR, kiln.env.KILN_STATE_DIR]) {
        Deno.mkdirSync(join(state, "gcroots", "deep"), { recursive: true });
        Deno.symlinkSync(`${c.mid}`, join(state, "gcroots", "deep", "mid"));
      }
      const nixLink = join(nix.root, "result-multi");
      const kilnLink = join(kiln.root, "result-multi");
      await nix.run("nix-store", ["--add-root", nixLink, "--realise", c.multi[2]]);
      await kiln.ok(["store", "add-root", kilnLink, c.multi[2]]);
      const rooted = await compare("direct and indirect roots");
      const noDrvs = await compare("keep-derivations false", [
        "--option",
        "keep-derivations",
        "false",
      ]);
      assertEquals(noDrvs.length - rooted.length, 4); // the derivations of leaf, mid, self, multi
      for (const link of [nixLink, kilnLink]) Deno.removeSync(link);
      const drvRoots = [nix.env.NIX_STATE_DIR, kiln.env.KILN_STATE_DIR].map((state) =>
        join(state, "gcroots", "drv")
      );
      for (const link of drvRoots) Deno.symlinkSync(c.multiDrv, link);
      const drvRooted = await compare("a derivation as root");
      const outputsKept = await compare("keep-outputs", ["--option", "keep-outputs", "true"]);
      assertEquals(drvRooted.length - outputsKept.length, 4); // multi's three outputs, self's
      for (const link of drvRoots) Deno.removeSync(link);
      // A removed out-link stops being a root, and its entry in gcroots/auto goes.
      await nix.run("nix-store", ["--add-root", nixLink, "--realise", c.top]);
      await kiln.ok(["store", "add-root", kilnLink, c.top]);
      await compare("the top as root");
      for (const link of [nixLink, kilnLink]) Deno.removeSync(link);
      await compare("out-link removed");
      assertEquals([...Deno.readDirSync(join(kiln.env.KILN_STATE_DIR, "gcroots", "auto"))], []);
      assertEquals(
        await kiln.ok(["store", "gc", "--print-roots"]),
        `${join(kiln.env.KILN_STATE_DIR, "gcroots", "deep", "mid")} -> ${c.mid}\n`,
      );
    }),
});

Deno.test({
  name: "kiln store gc and delete remove what nix-store --gc and --delete remove",
  ignore: closureIgnored,
  fn: () =>
    withClosure(async (nix, kiln, c) => {
      const dev = c.multi.find((p) => p.endsWith("-multi-dev"))!;
      const doc = c.multi.find((p) => p.endsWith("-multi-doc"))!;
      for (const state of [nix.env.NIX_STATE_DIR, kiln.env.KILN_STATE_DIR]) {
        Deno.mkdirSync(join(state, "gcroots"), { recursive: true });
        Deno.symlinkSync(dev, join(state, "gcroots", "dev"));
      }
      const listings = () =>
        [nix.storeDir, kiln.physical(nix.storeDir)].map((dir) =>
          [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => !n.startsWith(".")).sort()
        );
      // A live path is refused with Nix's message, and nothing is deleted.
      const [want, got] = await Promise.all([
        nix.runRaw("nix-store", ["--delete", c.mid]),
        kiln.run(["store", "delete", c.mid]),
      ]);
      assertEquals([got.code, lines(got.stderr).at(-1)], [want.code, lines(want.stderr).at(-1)]);
      const before = listings();
      assertEquals(before[1], before[0]);
      // A dead path and what refers to it go; a path something else still refers to stays.
      const [nixRefused, refused] = await Promise.all([
        nix.runRaw("nix-store", ["--delete", c.leaf]),
        kiln.run(["store", "delete", c.leaf]),
      ]);
      assertEquals(lines(refused.stderr).at(-1), lines(nixRefused.stderr).at(-1));
      await nix.run("nix-store", ["--delete", c.top, c.topDrv]);
      await kiln.ok(["store", "delete", c.top, c.topDrv]);
      const [nixAfter, kilnAfter] = listings();
      assertEquals(kilnAfter, nixAfter);
      assertEquals(nixAfter.length, before[0].length - 2);
      // A dead path goes; --ignore-liveness deletes a live path that nothing valid refers to.
      assertEquals((await kiln.run(["store", "delete", doc])).code, 0);
      await nix.run("nix-store", ["--delete", doc]);
      await kiln.ok(["store", "delete", "--ignore-liveness", dev]);
      await nix.run("nix-store", ["--delete", "--ignore-liveness", dev]);
      assertEquals(listings()[1], listings()[0]);
      // The collection itself: the same paths remain.
      for (const state of [nix.env.NIX_STATE_DIR, kiln.env.KILN_STATE_DIR]) {
        Deno.symlinkSync(c.self, join(state, "gcroots", "self"));
      }
      const [nixGc, kilnGc] = await Promise.all([
        nix.run("nix-store", ["--gc"]),
        kiln.ok(["store", "gc"]),
      ]);
      assertEquals(lines(kilnGc)[0].split(",")[0], lines(nixGc)[0].split(",")[0]);
      const [nixLeft, kilnLeft] = listings();
      assertEquals(kilnLeft, nixLeft);
      assertEquals(kilnLeft.map((n) => n.slice(33)).sort(), [
        "leaf",
        "leaf.drv",
        "self-ref",
        "self-ref.drv",
      ]);
      assertEquals(await kiln.ok(["store", "gc", "--print-dead"]), "");
    }),
});

Deno.test("kiln store gc killed mid-way leaves a store whose valid paths are whole", async () => {
  const kiln = new KilnStore();
  try {
    const sources = join(kiln.root, "src");
    Deno.mkdirSync(sources);
    const files = Array.from({ length: 800 }, (_, i) => join(sources, `f${i}-${"x".repeat(180)}`));
    for (const [i, file] of files.entries()) Deno.writeTextFileSync(file, `${i}\n`);
    const paths = lines(await kiln.ok(["store", "add", ...files]));
    const roots = [paths[0], paths[400], paths[799]];
    Deno.mkdirSync(join(kiln.env.KILN_STATE_DIR, "gcroots"), { recursive: true });
    for (const [i, path] of roots.entries()) {
      Deno.symlinkSync(path, join(kiln.env.KILN_STATE_DIR, "gcroots", `r${i}`));
    }
    // The collector announces each path on stderr after its batch is invalidated and before its
    // files go. Nobody reads that pipe, so it blocks once the pipe is full, hundreds of paths
    // before the end, with the path it announces invalid and still on disk: it is killed there,
    // once removals have been seen (inotify) and its main thread waits in a pipe write.
    const storeDir = kiln.physical("/nix/store");
    using watcher = Deno.watchFs(storeDir, { recursive: false });
    const collector = kiln.spawn(["store", "gc"]);
    for await (const event of watcher) if (event.kind === "remove") break;
    const wchan = `/proc/${collector.pid}/task/${collector.pid}/wchan`;
    await waitFor("the collector to block on stderr", () => {
      return /pipe_(write|wait)/.test(Deno.readTextFileSync(wchan)); // by kernel version
    });
    collector.kill("SIGKILL");
    assertEquals((await collector.status).signal, "SIGKILL");
    await Promise.all([collector.stdout.cancel(), collector.stderr.cancel()]);

    const onDisk = () => [...Deno.readDirSync(storeDir)].map((e) => `/nix/store/${e.name}`).sort();
    const store = LocalStore.open({
      storeDir: "/nix/store",
      storeRoot: kiln.env.KILN_STORE_ROOT,
      stateDir: kiln.env.KILN_STATE_DIR,
    });
    try {
      const valid = store.queryAllValidPaths();
      for (const path of valid) {
        const info = store.queryPathInfo(path)!;
        const nar = hashPath(store.physicalPath(path));
        assertEquals(nar.hash.toString("sri"), info.narHash.toString("sri"), path);
      }
      for (const root of roots) assertEquals(valid.includes(root), true);
      const leftovers = onDisk().filter((p) => !valid.includes(p));
      assertEquals(leftovers.length > 0 && valid.length > roots.length, true, "killed mid-way");
      const dead = lines(await kiln.ok(["store", "gc", "--print-dead"]));
      assertEquals(dead, [...valid.filter((p) => !roots.includes(p)), ...leftovers].sort());
    } finally {
      store.close();
    }
    // The next collection removes the leftovers with the rest of the garbage.
    await kiln.ok(["store", "gc"]);
    assertEquals(onDisk(), [...roots].sort());
    assertEquals(await kiln.ok(["store", "gc", "--print-dead"]), "");
  } finally {
    kiln.cleanup();
  }
});

Deno.test("kiln store gc --max-freed stops once enough is freed; --dry-run deletes nothing", async () => {
  const kiln = new KilnStore();
  try {
    const files = [1, 2, 3, 4].map((i) => join(kiln.root, `f${i}`));
    for (const [i, file] of files.entries()) Deno.writeTextFileSync(file, `${i}\n`);
    const paths = lines(await kiln.ok(["store", "add", ...files]));
    const dead = await kiln.ok(["store", "gc", "--dry-run"]);
    assertEquals(lines(dead), [...paths].sort());
    assertEquals(await kiln.ok(["store", "gc", "--print-dead"]), dead);
    const first = await kiln.run(["store", "gc", "--max-freed", "1"]);
    assertEquals(first.stdout, "1 store paths deleted, 0.00 MiB freed\n");
    assertEquals(lines(first.stderr).length, 1);
    assertEquals(lines(await kiln.ok(["store", "gc", "--print-dead"])).length, 3);
    const bad = await kiln.run(["store", "gc", "--max-freed", "lots"]);
    assertEquals([bad.code, lines(bad.stderr)[0]], [
      1,
      "error: --max-freed 'lots' is not a byte count",
    ]);
  } finally {
    kiln.cleanup();
  }
});
