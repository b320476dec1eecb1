/** `kiln derivation add|show` end to end, with real Nix's derivations as the expected result. */

import { parseDerivationJsonText, printDerivation } from "../../lib/derivation/mod.ts";
import { decodeNixString, encodeNixString, isUtf8Text } from "../../lib/hashing/mod.ts";
import { LocalStore } from "../../lib/store/mod.ts";
import { assert, assertEquals, assertStringIncludes } from "../_assert.ts";
import { KilnStore } from "../_kiln.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";
import { type Corpus, instantiateCorpus } from "../derivation/_corpus.ts";

/**
 * Copies the corpus's input sources into kiln's store the way Nix made them: `builtins.toFile`
 * files as text paths (with their references), path literals as NAR `source` paths. There is
 * no `kiln` command for text paths, so this goes through the library.
 */
async function addSources(nix: NixSandbox, kiln: KilnStore, corpus: Corpus): Promise<void> {
  const infos = JSON.parse(await nix.run("nix", ["path-info", "--json", ...corpus.sources])) as {
    path: string;
    references: string[];
    ca: string;
  }[];
  const store = LocalStore.open({
    storeDir: nix.storeDir,
    storeRoot: kiln.env.KILN_STORE_ROOT,
    stateDir: kiln.env.KILN_STATE_DIR,
  });
  try {
    // Text files may refer to each other: add referenced ones first.
    const pending = [...infos];
    while (pending.length > 0) {
      const i = pending.findIndex((info) =>
        info.references.every((r) => r === info.path || store.isValidPath(r))
      );
      const [info] = pending.splice(i, 1);
      const name = info.path.slice(nix.storeDir.length + 34);
      const added = info.ca.startsWith("text:")
        ? await store.addTextToStore(name, Deno.readTextFileSync(info.path), info.references)
        : (await store.addPath(info.path, { name })).path;
      assertEquals(added, info.path);
    }
  } finally {
    store.close();
  }
}

function shuffled<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** The parts of a 2.8 `nix show-derivation` entry the error tests change. */
type NixJson = {
  outputs: Record<string, { path: string; hash?: string }>;
  env: Record<string, string>;
};

function lines(text: string): string[] {
  return text.trim().split("\n").sort();
}

Deno.test({
  name: "kiln derivation add/show agree with Nix on the whole corpus (JSON and ATerm)",
  ignore: !nixAvailable,
  async fn() {
    const nix = new NixSandbox();
    const kiln = new KilnStore(nix.storeDir);
    const kilnAterm = new KilnStore(nix.storeDir);
    try {
      const corpus = await instantiateCorpus(nix);
      const texts = new Map(
        corpus.drvPaths.map((p) => [p, decodeNixString(Deno.readFileSync(p))]),
      );
      // JSON cannot carry bytes that are not UTF-8 (Nix strings are bytes): derivations holding
      // them go through ATerm below only.
      const writable = corpus.drvPaths.filter((p) => isUtf8Text(texts.get(p)!));
      assert(writable.length < corpus.drvPaths.length, "the corpus has a non-UTF-8 derivation");
      assert(writable.length >= 60, `only ${writable.length} derivations`);
      await addSources(nix, kiln, corpus);
      await addSources(nix, kilnAterm, corpus);

      // 2.8 `nix show-derivation -r` JSON, keys in a random order.
      const json = Object.fromEntries(shuffled(writable).map((p) => [p, corpus.json[p]]));
      assertEquals(lines(await kiln.ok(["derivation", "add"], JSON.stringify(json))), writable);
      for (const p of writable) {
        assertEquals(decodeNixString(Deno.readFileSync(kiln.physical(p))), texts.get(p));
      }

      // All of them as ATerm terms, back to back and newline-separated, in a random order: the
      // .drv files kiln writes are Nix's byte for byte, bytes that are not UTF-8 included.
      const all = corpus.drvPaths;
      const aterms = shuffled(all).map((p, i) => texts.get(p) + (i % 2 ? "\n" : ""));
      const stdin = encodeNixString(aterms.join(""));
      assertEquals(lines(await kilnAterm.ok(["derivation", "add"], stdin)).sort(), [...all].sort());
      for (const p of all) {
        assertEquals(Deno.readFileSync(kilnAterm.physical(p)), Deno.readFileSync(p));
      }

      // `show -r` of the roots gives back every derivation of the closure, byte for byte.
      const roots = corpus.roots.filter((p) => writable.includes(p));
      const shown = parseDerivationJsonText(
        await kiln.ok(["derivation", "show", "-r", ...roots]),
        nix.storeDir,
      );
      assertEquals(shown.map((e) => e.path!).sort(), writable);
      for (const { path, drv } of shown) assertEquals(printDerivation(drv), texts.get(path!));

      // What `show` prints, `add` takes (already valid: same paths again).
      const one = writable.find((p) => p.endsWith("-uses-sources.drv"))!;
      const shownOne = await kiln.ok(["derivation", "show", "--pretty", one]);
      assertStringIncludes(shownOne, '\n  "version": 4\n}');
      assertEquals(await kiln.ok(["derivation", "add"], shownOne), one + "\n");
    } finally {
      kiln.cleanup();
      kilnAterm.cleanup();
      nix.cleanup();
    }
  },
});

Deno.test({
  name: "kiln derivation add rejects wrong outputs, missing inputs and wrong keys, adding nothing",
  ignore: !nixAvailable,
  async fn() {
    const nix = new NixSandbox();
    const kiln = new KilnStore(nix.storeDir);
    try {
      const corpus = await instantiateCorpus(nix);
      const entry = (suffix: string) => {
        const path = corpus.drvPaths.find((p) => p.endsWith(suffix))!;
        return [path, structuredClone(corpus.json[path]) as NixJson] as const;
      };
      const fail = async (stdin: string, ...expected: string[]) => {
        const r = await kiln.run(["derivation", "add"], stdin);
        assertEquals(r.code, 1, r.stderr);
        for (const e of expected) assertStringIncludes(r.stderr, e);
        assertEquals(r.stdout, "");
      };

      const [libFirst, lib] = entry("-lib-first.drv");
      lib.outputs.lib.path = lib.outputs.out.path;
      await fail(JSON.stringify({ [libFirst]: lib }), "incorrect output 'lib'");

      const [, env] = entry("-lib-first.drv");
      env.env.out = env.outputs.lib.path;
      await fail(JSON.stringify({ name: "lib-first", ...env }), "environment variable 'out'");

      const [chainPath, chain] = entry("-chain-0.drv");
      await fail(JSON.stringify({ [chainPath]: chain }), "Input derivation", "chain-base.drv");

      const [basePath, base] = entry("-chain-base.drv");
      await fail(JSON.stringify({ [basePath]: base }), "Input source", "-hello.txt");

      const [fixedPath, fixed] = entry("-fixed-flat-md5.drv");
      const wrongKey = `${nix.storeDir}/${"0".repeat(32)}-fixed-flat-md5.drv`;
      await fail(JSON.stringify({ [wrongKey]: fixed }), wrongKey, fixedPath);

      const [, badHash] = entry("-fixed-rec-sha1.drv");
      badHash.outputs.out.hash = "abc";
      await fail(JSON.stringify({ name: "fixed-rec-sha1", ...badHash }), "outputs.out.hash");

      await fail("Derive([", "Invalid derivation #1 at offset 8");

      // One bad derivation in a document stops the good ones too.
      const [, broken] = entry("-lib-first.drv");
      broken.outputs.lib.path = broken.outputs.out.path;
      await fail(JSON.stringify({ [fixedPath]: fixed, [libFirst]: broken }), "output 'lib'");
      const r = await kiln.run(["derivation", "show", fixedPath]);
      assertEquals(r.code, 1);
      assertStringIncludes(r.stderr, "is not valid in the store");
    } finally {
      kiln.cleanup();
      nix.cleanup();
    }
  },
});
