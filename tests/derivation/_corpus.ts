/**
 * A corpus of derivations instantiated by real Nix (one `nix-instantiate` call), for oracle
 * tests: several outputs, fixed outputs (flat and recursive; md5, sha1, sha256, sha512), awkward
 * env strings, passAsFile, structured attrs, deep chains, input sources, output-specific and
 * fixed-output dependencies, `drvPath` contexts.
 */

import { join } from "node:path";
import { parseJsonText } from "../../lib/derivation/mod.ts";
import { decodeNixString } from "../../lib/hashing/mod.ts";
import type { NixSandbox } from "../_nix.ts";

const CORPUS_NIX = new URL("../testdata/derivation_corpus.nix", import.meta.url);

/** What Nix made of the corpus. */
export interface Corpus {
  /** The `.drv` paths nix-instantiate printed. */
  roots: string[];
  /** `nix show-derivation -r` of the roots (Nix 2.8 JSON), and its text. */
  json: Record<string, unknown>;
  jsonText: string;
  /** Every `.drv` in the closure (the JSON's keys), sorted. */
  drvPaths: string[];
  /** Input sources that are not `.drv` files, sorted. */
  sources: string[];
}

/** Writes the corpus (and its path-literal sources) into `nix.root` and instantiates it. */
export async function instantiateCorpus(nix: NixSandbox): Promise<Corpus> {
  const dir = join(nix.root, "corpus");
  Deno.mkdirSync(join(dir, "dir", "sub"), { recursive: true });
  Deno.writeTextFileSync(join(dir, "x"), "a file copied as a source\n");
  Deno.writeTextFileSync(join(dir, "dir", "script"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
  Deno.writeTextFileSync(join(dir, "dir", "sub", "data"), "data\n");
  Deno.symlinkSync("sub/data", join(dir, "dir", "link"));
  Deno.copyFileSync(CORPUS_NIX, join(dir, "default.nix"));
  const printed = await nix.run("nix-instantiate", [join(dir, "default.nix")]);
  // A derivation whose first output is not `out` is printed as `<drv>!<output>`.
  const roots = [...new Set(printed.trim().split("\n").map((line) => line.replace(/!.*$/, "")))];
  const shown = await nix.runRaw("nix", ["show-derivation", "-r", ...roots]);
  if (shown.code !== 0) throw new Error(`nix show-derivation failed: ${shown.stderr}`);
  // Nix 2.8 writes a string's bytes as they are, UTF-8 or not: decode without loss.
  const jsonText = decodeNixString(shown.bytes);
  const json = parseJsonText(jsonText) as Record<string, { inputSrcs: string[] }>;
  const drvPaths = Object.keys(json).sort();
  const sources = [
    ...new Set(Object.values(json).flatMap((d) => d.inputSrcs.filter((p) => !p.endsWith(".drv")))),
  ].sort();
  return { roots, json, jsonText, drvPaths, sources };
}
