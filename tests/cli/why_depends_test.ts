import { assertEquals } from "../_assert.ts";
import { closureIgnored, withClosure } from "./_closure.ts";

Deno.test({
  name: "kiln why-depends prints what nix why-depends prints, with --all and --precise",
  ignore: closureIgnored,
  fn: () =>
    withClosure(async (nix, kiln, c) => {
      const pairs = [
        [c.top, c.leaf],
        [c.top, c.mid],
        [c.multi[1], c.leaf],
        [c.top, c.multi[0]],
        [c.top, c.top],
        [c.self, c.self],
        [c.self, c.leaf],
        [c.leaf, c.top], // no dependency: a line on stderr, status 0
      ];
      for (const pair of pairs) {
        for (const flags of [[], ["--all"], ["--precise"], ["-a", "--precise"]]) {
          const args = [...flags, ...pair];
          const [want, got] = await Promise.all([
            nix.runRaw("nix", ["why-depends", ...args]),
            kiln.run(["why-depends", ...args]),
          ]);
          const what = args.map((a) => a.replace(/.*\//, "")).join(" ");
          assertEquals(got.stdout, want.stdout, what);
          assertEquals([got.code, got.stderr], [want.code, want.stderr], what);
        }
      }
      // A .drv is taken as the store path it is (Nix 2.8 would ask for its outputs instead).
      assertEquals(
        await kiln.ok(["why-depends", c.topDrv, c.multiDrv]),
        `${c.topDrv}\n└───${c.multiDrv}\x1b[0m\n`,
      );
      const bad = await kiln.run(["why-depends", c.top]);
      assertEquals([bad.code, bad.stderr.split("\n")[0]], [
        1,
        "error: kiln why-depends needs PKG and DEP",
      ]);
    }),
});
