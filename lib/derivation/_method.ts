/** Content-address methods as derivations write them: `r:sha256`, `text:sha256`, `sha1`. */

import {
  type Hash,
  type HashAlgorithm,
  makeFixedOutputPath,
  makeTextPath,
  parseHashAlgorithm,
} from "../hashing/mod.ts";
import type { ContentAddressMethod } from "./derivation.ts";
import { unreachable } from "../sys/mod.ts";

const PREFIXES: readonly [string, ContentAddressMethod][] = [["r:", "nar"], ["text:", "text"]];

/** `r:sha256` (nar), `text:sha256` (text) or `sha256` (flat), as in ATerm and old JSON. */
export function printMethodAlgo(method: ContentAddressMethod, algorithm: HashAlgorithm): string {
  switch (method) {
    case "nar":
      return `r:${algorithm}`;
    case "text":
      return `text:${algorithm}`;
    case "flat":
      return algorithm;
    default:
      return unreachable(method);
  }
}

/** Parses `r:sha256` and friends; throws a SyntaxError naming the text when it is not one. */
export function parseMethodAlgo(
  text: string,
): { method: ContentAddressMethod; algorithm: HashAlgorithm } {
  if (text.startsWith("git:")) {
    throw new SyntaxError(`Hash algorithm '${text}' uses git hashing, which kiln does not support`);
  }
  for (const [prefix, method] of PREFIXES) {
    if (text.startsWith(prefix)) {
      return { method, algorithm: parseHashAlgorithm(text.slice(prefix.length)) };
    }
  }
  return { method: "flat", algorithm: parseHashAlgorithm(text) };
}

/** Parses a method name as JSON (2.23+) writes it: `flat`, `nar` or `text`. */
export function parseMethod(text: string): ContentAddressMethod {
  if (text === "flat" || text === "nar" || text === "text") return text;
  if (text === "git") throw new SyntaxError("Method 'git' (git hashing) is not supported");
  throw new SyntaxError(`Unknown content-address method '${text}' (expected flat, nar or text)`);
}

/** Path of a fixed output named `name` (the output path name) with this content address. */
export function fixedOutputPath(
  storeDir: string,
  options: { method: ContentAddressMethod; hash: Hash; name: string },
): string {
  const { method, hash, name } = options;
  if (method === "text") {
    if (hash.algorithm !== "sha256") {
      throw new RangeError(`Text-hashed output '${name}' must use sha256, not ${hash.algorithm}`);
    }
    return makeTextPath(storeDir, hash, name);
  }
  return makeFixedOutputPath(storeDir, { method, hash, name });
}
