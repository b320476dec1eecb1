import { join } from "node:path";
import { explainDependency, removeTree } from "../../lib/store/mod.ts";
import { assertEquals } from "../_assert.ts";

const HA = "a".repeat(32);
const HB = "b".repeat(32);
const PKG = `/nix/store/${HA}-pkg`;
const DEP = `/nix/store/${HB}-dep`;
const GREEN = "\x1b[32;1m";
const NORMAL = "\x1b[0m";
const refs = (p: string) => (p === PKG ? [DEP] : []);

function withTree(fn: (physicalPath: (p: string) => string) => void): void {
  const root = Deno.makeTempDirSync({ prefix: "kiln-why-" });
  try {
    const pkg = join(root, PKG);
    Deno.mkdirSync(pkg, { recursive: true });
    // A hash 4 bytes in (less than the margin before it), after a two-byte UTF-8 character.
    const text = new TextEncoder().encode(`é x${HB}\n${"y".repeat(40)}`);
    Deno.writeFileSync(join(pkg, "f"), text);
    Deno.symlinkSync(`${DEP}/bin`, join(pkg, "l"));
    Deno.writeTextFileSync(join(root, DEP), "dep\n");
    fn((p) => join(root, p));
  } finally {
    removeTree(root);
  }
}

Deno.test("explainDependency() gives the chain, or undefined when there is none", () => {
  assertEquals(explainDependency(PKG, DEP, refs), [PKG, `└───${DEP}${NORMAL}`]);
  assertEquals(explainDependency(DEP, PKG, refs), undefined);
});

Deno.test("explainDependency() with physicalPath shows the bytes around each hash", () => {
  withTree((physicalPath) => {
    const file = `f: ….. x${GREEN}${HB}${NORMAL}.${"y".repeat(31)}…`;
    const link = `l -> /nix/store/${GREEN}${HB}${NORMAL}-dep/bin`;
    assertEquals(explainDependency(PKG, DEP, refs, { physicalPath }), [
      `${PKG}${NORMAL}`,
      `└───${file}`,
      `    → ${DEP}${NORMAL}`,
    ]);
    assertEquals(explainDependency(PKG, DEP, refs, { physicalPath, all: true }), [
      `${PKG}${NORMAL}`,
      `└───${file}`,
      `    ${link}`,
      `    → ${DEP}${NORMAL}`,
    ]);
  });
});
