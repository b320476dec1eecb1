/** Store path syntax and the ways Nix computes store paths from hashes. */

import { compressHash, type Hash, hashBytes } from "./hash.ts";
import { encodeNixBase32, isNixBase32Digit } from "./nix_base32.ts";

/** Length of the hash part of a store path's base name. */
export const HASH_PART_LENGTH = 32;
/** Longest name Nix allows after the hash part. */
export const MAX_NAME_LENGTH = 211;

const NAME_CHARS = /^[A-Za-z0-9+\-._?=]+$/;

/** Throws a SyntaxError naming `name` when it is not a valid store path name. */
export function validateStorePathName(name: string): void {
  if (name.length === 0) throw new SyntaxError("Store path name is empty");
  if (name.length > MAX_NAME_LENGTH) {
    throw new SyntaxError(
      `Store path name '${name}' is longer than ${MAX_NAME_LENGTH} characters`,
    );
  }
  if (!NAME_CHARS.test(name)) {
    const bad = [...name].find((c) => !NAME_CHARS.test(c));
    throw new SyntaxError(
      `Store path name '${name}' contains the forbidden character '${bad}'`,
    );
  }
}

/** The parts of a store path: `<storeDir>/<hashPart>-<name>`. */
export interface StorePathParts {
  hashPart: string;
  name: string;
}

/** Splits a base name `<hash>-<name>`, validating both; throws a SyntaxError naming it. */
export function parseStorePathBaseName(baseName: string): StorePathParts {
  if (baseName.length < HASH_PART_LENGTH + 2 || baseName[HASH_PART_LENGTH] !== "-") {
    throw new SyntaxError(`Store path base name '${baseName}' is not '<hash>-<name>'`);
  }
  const hashPart = baseName.slice(0, HASH_PART_LENGTH);
  for (let i = 0; i < HASH_PART_LENGTH; i++) {
    if (!isNixBase32Digit(hashPart.charCodeAt(i))) {
      throw new SyntaxError(`Store path '${baseName}' has an invalid hash part '${hashPart}'`);
    }
  }
  const name = baseName.slice(HASH_PART_LENGTH + 1);
  try {
    validateStorePathName(name);
  } catch (e) {
    throw new SyntaxError(`Invalid store path '${baseName}': ${(e as Error).message}`);
  }
  return { hashPart, name };
}

/** Parses a full store path under `storeDir`; throws a SyntaxError naming it when malformed. */
export function parseStorePath(storeDir: string, path: string): StorePathParts {
  const prefix = storeDir + "/";
  if (!path.startsWith(prefix) || path.indexOf("/", prefix.length) >= 0) {
    throw new SyntaxError(`Path '${path}' is not a store path directly under ${storeDir}`);
  }
  try {
    return parseStorePathBaseName(path.slice(prefix.length));
  } catch (e) {
    throw new SyntaxError(`Invalid store path '${path}': ${(e as Error).message}`);
  }
}

/** The hash part of a store path (its first 32 characters after the store dir). */
export function storePathHashPart(storeDir: string, path: string): string {
  return path.slice(storeDir.length + 1, storeDir.length + 1 + HASH_PART_LENGTH);
}

/** `makeStorePath`: `<storeDir>/<nix32(compress20(sha256(type:sha256:<hex>:<dir>:<name>)))>-<name>`. */
export function makeStorePath(storeDir: string, type: string, inner: Hash, name: string): string {
  validateStorePathName(name);
  const fingerprint = `${type}:sha256:${inner.toString("base16")}:${storeDir}:${name}`;
  const digest = compressHash(hashBytes("sha256", fingerprint), 20);
  return `${storeDir}/${encodeNixBase32(digest)}-${name}`;
}

function typeWithReferences(type: string, references: Iterable<string>, self = false): string {
  let out = type;
  for (const ref of [...references].sort()) out += ":" + ref;
  return self ? out + ":self" : out;
}

/** Path of a text file added by content (`.drv` files): type `text` with its references. */
export function makeTextPath(
  storeDir: string,
  contentsHash: Hash,
  name: string,
  references: Iterable<string> = [],
): string {
  return makeStorePath(storeDir, typeWithReferences("text", references), contentsHash, name);
}

/** How a fixed-output path's contents are hashed: the file itself, or its NAR serialisation. */
export type FileIngestionMethod = "flat" | "nar";

/** Options of {@link makeFixedOutputPath}. */
export interface FixedOutputPathOptions {
  method: FileIngestionMethod;
  hash: Hash;
  name: string;
  references?: Iterable<string>;
  /** Whether the path refers to itself (only for NAR + sha256). */
  selfReference?: boolean;
}

/** `makeFixedOutputPath`: `source` for NAR+sha256, otherwise `output:out` over `fixed:out:...`. */
export function makeFixedOutputPath(storeDir: string, options: FixedOutputPathOptions): string {
  const { method, hash, name } = options;
  const references = [...(options.references ?? [])];
  if (method === "nar" && hash.algorithm === "sha256") {
    const type = typeWithReferences("source", references, options.selfReference);
    return makeStorePath(storeDir, type, hash, name);
  }
  if (references.length > 0 || options.selfReference) {
    throw new TypeError(`Fixed-output path '${name}' cannot have references`);
  }
  const inner = hashBytes(
    "sha256",
    `fixed:out:${method === "nar" ? "r:" : ""}${hash.toBase16Prefixed()}:`,
  );
  return makeStorePath(storeDir, "output:out", inner, name);
}

/** The content address Nix records for such a path (`fixed:r:sha256:<nix32>`, `text:sha256:...`). */
export function renderContentAddress(
  kind: "text" | FileIngestionMethod,
  hash: Hash,
): string {
  if (kind === "text") return `text:${hash.toNix32Prefixed()}`;
  return `fixed:${kind === "nar" ? "r:" : ""}${hash.toNix32Prefixed()}`;
}

/** Name of output `output` of a derivation named `drvName`. */
export function outputPathName(drvName: string, output: string): string {
  return output === "out" ? drvName : `${drvName}-${output}`;
}

/** Path of an input-addressed output, from the derivation's masked modulo hash. */
export function makeOutputPath(
  storeDir: string,
  output: string,
  moduloHash: Hash,
  drvName: string,
): string {
  return makeStorePath(storeDir, `output:${output}`, moduloHash, outputPathName(drvName, output));
}
