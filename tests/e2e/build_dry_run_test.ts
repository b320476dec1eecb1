/**
 * `kiln build --dry-run` against `nix-store --realise --dry-run` (Nix 2.8): the same derivations
 * to build, in the same order, and the same paths to fetch from a file:// cache with the same
 * sizes, in the same words; and nothing built, fetched or registered.
 */

import { join } from "node:path";
import { probeSandbox } from "../../lib/sandbox/mod.ts";
import { assertEquals } from "../_assert.ts";
import { KilnStore } from "../_kiln.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";
import { HOST_SANDBOX_PATHS } from "./_drv.ts";

const ignore = !nixAvailable || !(await probeSandbox()).ok;

const CORPUS = `
let
  mk = name: script: derivation { inherit name; system = "x86_64-linux";
    builder = "/bin/sh"; args = ["-c" script]; };
  base = mk "base" "echo base > $out";
  leaf = mk "leaf" "echo \${base} > $out";
  big = mk "big" "i=0; while [ $i -lt 30000 ]; do echo line $i; i=$((i+1)); done > $out";
  mid1 = mk "mid1" "echo \${leaf} > $out";
  mid2 = mk "mid2" "echo \${big} \${mid1} > $out";
  top = mk "top" "echo \${mid2} \${mid1} > $out";
  lone = mk "lone" "echo lone > $out";
in { inherit base leaf big mid1 mid2 top lone; }
`;

const NAMES = ["base", "leaf", "big", "mid1", "mid2", "top", "lone"] as const;

Deno.test({
  name: "kiln build --dry-run prints what Nix 2.8 prints, and builds and fetches nothing",
  ignore,
  fn: async () => {
    const nix = new NixSandbox("sandbox = false\nrequire-sigs = false\n");
    nix.env.XDG_CACHE_HOME = join(nix.root, "cache-home"); // Nix's narinfo cache
    const builder = new KilnStore(nix.storeDir);
    const user = new KilnStore(nix.storeDir);
    for (const kiln of [builder, user]) {
      kiln.env.KILN_CONFIG = `sandbox-paths = ${HOST_SANDBOX_PATHS}\nrequire-sigs = false\n`;
    }
    try {
      const file = join(nix.root, "corpus.nix");
      Deno.writeTextFileSync(file, CORPUS);
      // One run: Nix processes starting on a fresh store at once race to create its database.
      const paths = (await nix.run("nix-instantiate", [file, ...NAMES.flatMap((n) => ["-A", n])]))
        .trim().split("\n");
      assertEquals(paths.length, NAMES.length, paths.join("\n"));
      const drvs = Object.fromEntries(NAMES.map((name, i) => [name, paths[i]]));
      // The cache holds leaf (with base, which it references) and big.
      const built = (await builder.ok(["build", drvs.leaf, drvs.big])).trim().split("\n");
      const cache = `file://${join(nix.root, "binary-cache")}`;
      await builder.ok(["copy", "--to", cache, ...built]);

      const cases: [string[], boolean][] = [
        [[drvs.top], true],
        [[drvs.big], true],
        [[drvs.mid1, drvs.lone], true],
        [[drvs.lone, drvs.top], false],
        [[drvs.lone], false],
      ];
      let said = "";
      for (const [targets, withCache] of cases) {
        const substituters = withCache ? cache : "";
        const [n, k] = await Promise.all([
          nix.runRaw("nix-store", [
            "--realise",
            "--dry-run",
            "--option",
            "substituters",
            substituters,
            ...targets,
          ]),
          user.run(["build", "--dry-run", "--substituters", substituters, ...targets]),
        ]);
        assertEquals(n.code, 0, n.stderr);
        said += n.stderr;
        assertEquals([k.code, k.stdout, k.stderr], [0, "", n.stderr], targets.join(" "));
      }
      // Every form was compared: one and several derivations, one path and several.
      for (
        const form of [
          /^this derivation will be built:$/m,
          /^these 7 derivations/m,
          /^this path will be fetched \(/m,
          /^these 3 paths will be fetched \(/m,
        ]
      ) {
        assertEquals(form.test(said), true, `${form}`);
      }
      // Nothing was fetched or built.
      for (const path of built) {
        assertEquals((await user.run(["store", "path-info", path])).code, 1, path);
      }
    } finally {
      builder.cleanup();
      user.cleanup();
      nix.cleanup();
    }
  },
});
