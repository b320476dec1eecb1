/** Real Nix as the judge: kiln must agree byte for byte on every derivation of the corpus. */

import {
  checkOutputPaths,
  computeOutputPaths,
  type Derivation,
  type DerivationHashCache,
  derivationPath,
  parseDerivation,
  parseDerivationJson,
  parseDerivationJsonText,
  printDerivation,
  printDerivationJson,
} from "../../lib/derivation/mod.ts";
import { decodeNixString, parseStorePath } from "../../lib/hashing/mod.ts";
import { assert, assertEquals } from "../_assert.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";
import { instantiateCorpus } from "./_corpus.ts";

/** Output paths as `nix show-derivation` (2.8) recorded them. */
function nixOutputPaths(json: unknown): Map<string, string> {
  const outputs = (json as { outputs: Record<string, { path: string }> }).outputs;
  return new Map(Object.entries(outputs).map(([name, o]) => [name, o.path]));
}

Deno.test({
  name: "derivations agree with nix-instantiate: paths, ATerm bytes, output paths, JSON",
  ignore: !nixAvailable,
  async fn() {
    const nix = new NixSandbox();
    try {
      const corpus = await instantiateCorpus(nix);
      const storeDir = nix.storeDir;
      assert(corpus.drvPaths.length >= 60, `only ${corpus.drvPaths.length} derivations`);
      const texts = new Map(
        corpus.drvPaths.map((p) => [p, decodeNixString(Deno.readFileSync(p))]),
      );
      const parsed = new Map<string, Derivation>();
      for (const [path, text] of texts) {
        const name = parseStorePath(storeDir, path).name.slice(0, -".drv".length);
        parsed.set(path, parseDerivation(text, name));
      }
      const resolve = (p: string) => parsed.get(p)!;
      const cache: DerivationHashCache = new Map();

      const fromJson = new Map(
        parseDerivationJson(corpus.json, storeDir).map(({ path, drv }) => [path!, drv]),
      );
      assertEquals([...fromJson.keys()].sort(), corpus.drvPaths);

      for (const [path, drv] of parsed) {
        const expected = nixOutputPaths(corpus.json[path]);
        assertEquals(printDerivation(drv), texts.get(path), `ATerm of ${path}`);
        assertEquals(derivationPath(storeDir, drv), path);
        assertEquals(computeOutputPaths(storeDir, drv, resolve, { cache }), expected, path);
        assertEquals(checkOutputPaths(storeDir, drv, resolve, { cache }), expected, path);

        const viaJson = fromJson.get(path)!;
        assertEquals(printDerivation(viaJson), texts.get(path), `ATerm from JSON of ${path}`);
        assertEquals(computeOutputPaths(storeDir, viaJson, (p) => fromJson.get(p)!), expected);
      }

      // The version 4 form (compact and pretty) reads back to the same bytes, keys and all.
      const entries = [...parsed].map(([path, drv]) => ({ path, drv }));
      for (const pretty of [false, true]) {
        const v4 = printDerivationJson(entries, storeDir, { pretty });
        const back = parseDerivationJsonText(v4, storeDir);
        assertEquals(back.length, entries.length);
        for (const { path, drv } of back) assertEquals(printDerivation(drv), texts.get(path!));
      }

      // Structured attrs come out as an object, and env keeps no `__json`.
      const structured = corpus.drvPaths.find((p) => p.endsWith("-structured.drv"))!;
      const v4 = JSON.parse(printDerivationJson([{ drv: parsed.get(structured)! }], storeDir));
      const doc = v4.derivations[structured.slice(storeDir.length + 1)];
      assertEquals(doc.structuredAttrs.nested['quote"key'], "v\n\t\r\\");
      assertEquals(doc.env.__json, undefined);
    } finally {
      nix.cleanup();
    }
  },
});
