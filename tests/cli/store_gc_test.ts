import { join } from "node:path";
import { assertEquals } from "../_assert.ts";
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
      assertEquals((await compare("no roots")).length, 12); // 5 derivations, 7 outputs
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
