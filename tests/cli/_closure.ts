/**
 * One small closure built by both Nix 2.8 and kiln under the same store dir, for the tests that
 * compare store queries, exports and why-depends with Nix: references across outputs of a
 * multi-output derivation, a self-reference, a directory with several referring files.
 */

import { probeSandbox } from "../../lib/sandbox/mod.ts";
import { assertEquals } from "../_assert.ts";
import type { KilnStore } from "../_kiln.ts";
import { nixAvailable, type NixSandbox } from "../_nix.ts";
import { withNixAndKiln } from "../e2e/_drv.ts";

/** Whether the closure can be built here (Nix, and kiln's sandbox). */
export const closureIgnored: boolean = !nixAvailable || !(await probeSandbox()).ok;

const EXPR = `
let
  mk = name: script: attrs: derivation ({ inherit name; system = "x86_64-linux";
    builder = "/bin/sh"; args = ["-c" script]; } // attrs);
  leaf = mk "leaf" "echo leaf > $out" {};
  mid = mk "mid" "echo \${leaf} > $out" {};
  self = mk "self-ref" "echo $out \${leaf} > $out" {};
  multi = mk "multi" "echo \${mid} > $out; echo $out > $dev; echo \${self} > $doc"
    { outputs = ["out" "dev" "doc"]; };
  top = mk "top" ''
    /bin/mkdir -p $out/sub
    echo "before \${multi.dev} after" > $out/sub/x
    echo \${mid} > $out/y
    /bin/ln -s \${leaf} $out/link
    printf 'a\tb %s\n' \${leaf} > $out/sub/z
  '' {};
in { inherit top leaf mid self multi; }
`;

/** The closure's paths by role. */
export interface Closure {
  topDrv: string;
  multiDrv: string;
  top: string;
  leaf: string;
  mid: string;
  self: string;
  /** out, dev and doc of `multi`. */
  multi: string[];
}

/** Builds the closure in a fresh Nix store and a kiln store of the same store dir. */
export async function withClosure(
  fn: (nix: NixSandbox, kiln: KilnStore, closure: Closure) => Promise<void>,
): Promise<void> {
  await withNixAndKiln(async (nix, kiln) => {
    const file = `${nix.root}/closure.nix`;
    Deno.writeTextFileSync(file, EXPR);
    const drvs = (await nix.run("nix-instantiate", [file])).trim().split("\n");
    const [leafDrv, midDrv, multiDrv, selfDrv, topDrv] = drvs;
    await kiln.ok(["derivation", "add"], await nix.run("nix", ["show-derivation", "-r", ...drvs]));
    const nixOut = lines(await nix.run("nix-store", ["--realise", ...drvs]));
    const kilnOut = lines(await kiln.ok(["build", "--sandbox", ...drvs.map((d) => `${d}^*`)]));
    assertEquals([...kilnOut].sort(), [...nixOut].sort());
    const out = async (drv: string) => lines(await nix.run("nix-store", ["-q", "--outputs", drv]));
    await fn(nix, kiln, {
      topDrv,
      multiDrv,
      top: (await out(topDrv))[0],
      leaf: (await out(leafDrv))[0],
      mid: (await out(midDrv))[0],
      self: (await out(selfDrv))[0],
      multi: await out(multiDrv),
    });
  });
}

export function lines(text: string): string[] {
  return text.split("\n").filter((l) => l !== "");
}
