/** Hash algorithms and the text forms Nix prints and parses (base16, nix32, base64, SRI). */

import { openDigests } from "./_digests.ts";
import { decodeNixBase32, encodeNixBase32, nixBase32Length } from "./nix_base32.ts";
import { InternalError, unreachable } from "../sys/mod.ts";

export type HashAlgorithm = "md5" | "sha1" | "sha256" | "sha512";
export type HashFormat = "base16" | "nix32" | "base64" | "sri";

export const HASH_ALGORITHMS: readonly HashAlgorithm[] = ["md5", "sha1", "sha256", "sha512"];
export const HASH_FORMATS: readonly HashFormat[] = ["base16", "nix32", "base64", "sri"];

const HASH_SIZES: Record<HashAlgorithm, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

/** Byte length of a digest of `algorithm`. */
export function hashSize(algorithm: HashAlgorithm): number {
  return HASH_SIZES[algorithm];
}

/** A digest together with its algorithm. */
export class Hash {
  constructor(readonly algorithm: HashAlgorithm, readonly bytes: Uint8Array) {
    if (bytes.length !== HASH_SIZES[algorithm]) {
      throw new InternalError(
        `${algorithm} digest of ${bytes.length} bytes, expected ${HASH_SIZES[algorithm]}`,
      );
    }
  }

  /** Text in `format`; base16, nix32 and base64 carry an `algo:` prefix when `prefix` is set. */
  toString(format: HashFormat = "sri", prefix = format === "sri"): string {
    switch (format) {
      case "sri":
        return `${this.algorithm}-${encodeBase64(this.bytes)}`;
      case "base16":
      case "nix32":
      case "base64": {
        const digits = format === "base16"
          ? encodeBase16(this.bytes)
          : format === "nix32"
          ? encodeNixBase32(this.bytes)
          : encodeBase64(this.bytes);
        return prefix ? `${this.algorithm}:${digits}` : digits;
      }
      default:
        return unreachable(format);
    }
  }

  /** `algo:<hex>`, the form Nix keeps in its database. */
  toBase16Prefixed(): string {
    return this.toString("base16", true);
  }

  /** `algo:<nix32>`, the form of narinfo files and path-info. */
  toNix32Prefixed(): string {
    return this.toString("nix32", true);
  }

  equals(other: Hash): boolean {
    return this.algorithm === other.algorithm && equalBytes(this.bytes, other.bytes);
  }
}

/** Parses an algorithm name; throws a SyntaxError naming it when unknown. */
export function parseHashAlgorithm(name: string): HashAlgorithm {
  if ((HASH_ALGORITHMS as readonly string[]).includes(name)) return name as HashAlgorithm;
  throw new SyntaxError(`Unknown hash algorithm '${name}' (expected md5, sha1, sha256 or sha512)`);
}

/** Parses a format name as `--to`/`--from` take it; `base32` is Nix's old name for nix32. */
export function parseHashFormat(name: string): HashFormat {
  if (name === "base32") return "nix32";
  if ((HASH_FORMATS as readonly string[]).includes(name)) return name as HashFormat;
  throw new SyntaxError(`Unknown hash format '${name}' (expected base16, nix32, base64 or sri)`);
}

/** A parsed hash text and the format its digits were written in. */
export interface ParsedHash {
  hash: Hash;
  format: HashFormat;
}

/**
 * Parses `algo:digits`, `algo-base64` (SRI) or bare digits (then `algorithm` is required), where
 * the digits' encoding is told by their length, as Nix does. `algorithm`, when given, must agree.
 */
export function parseHashWithFormat(text: string, algorithm?: HashAlgorithm): ParsedHash {
  let algo = algorithm;
  let digits = text;
  let sri = false;
  const colon = text.indexOf(":");
  const dash = text.indexOf("-");
  if (colon >= 0 || dash >= 0) {
    const cut = colon >= 0 && (dash < 0 || colon < dash) ? colon : dash;
    sri = cut === dash;
    const named = parseHashAlgorithmIn(text.slice(0, cut), text);
    if (algorithm && named !== algorithm) {
      throw new SyntaxError(`Hash '${text}' should have type '${algorithm}'`);
    }
    algo = named;
    digits = text.slice(cut + 1);
  }
  if (!algo) throw new SyntaxError(`Hash '${text}' does not include a type`);
  const size = HASH_SIZES[algo];
  try {
    if (sri) {
      const bytes = decodeBase64(digits);
      if (bytes.length !== size) throw new SyntaxError("wrong length");
      return { hash: new Hash(algo, bytes), format: "sri" };
    }
    if (digits.length === size * 2) {
      return { hash: new Hash(algo, decodeBase16(digits)), format: "base16" };
    }
    if (digits.length === nixBase32Length(size)) {
      return { hash: new Hash(algo, decodeNixBase32(digits, size)), format: "nix32" };
    }
    if (digits.length === Math.ceil(size / 3) * 4) {
      const bytes = decodeBase64(digits);
      if (bytes.length === size) return { hash: new Hash(algo, bytes), format: "base64" };
    }
  } catch {
    // fall through to the one message below
  }
  throw new SyntaxError(`Invalid ${algo} hash '${text}'`);
}

function parseHashAlgorithmIn(name: string, text: string): HashAlgorithm {
  if ((HASH_ALGORITHMS as readonly string[]).includes(name)) return name as HashAlgorithm;
  throw new SyntaxError(`Unknown hash algorithm '${name}' in hash '${text}'`);
}

/** Parses a hash text (see {@link parseHashWithFormat}). */
export function parseHash(text: string, algorithm?: HashAlgorithm): Hash {
  return parseHashWithFormat(text, algorithm).hash;
}

/** An incremental digest over chunks; native and streaming. */
export interface Hasher {
  update(chunk: Uint8Array | string): void;
  digest(): Hash;
}

const utf8 = new TextEncoder();
let digests: ReturnType<typeof openDigests> | undefined;

/** Starts an incremental digest of `algorithm`. */
export function createHasher(algorithm: HashAlgorithm): Hasher {
  const d = (digests ??= openDigests())(algorithm);
  return {
    update(chunk) {
      d.update(typeof chunk === "string" ? utf8.encode(chunk) : chunk);
    },
    digest() {
      return new Hash(algorithm, d.digest());
    },
  };
}

/** Digest of one buffer or string (UTF-8). */
export function hashBytes(algorithm: HashAlgorithm, data: Uint8Array | string): Hash {
  const h = createHasher(algorithm);
  h.update(data);
  return h.digest();
}

/** Nix's compressHash: folds a digest into `size` bytes by XOR. */
export function compressHash(hash: Hash, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < hash.bytes.length; i++) out[i % size] ^= hash.bytes[i];
  return out;
}

const HEX = "0123456789abcdef";

export function encodeBase16(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += HEX[b >> 4] + HEX[b & 15];
  return out;
}

export function decodeBase16(text: string): Uint8Array {
  if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw new SyntaxError(`Invalid base-16 text '${text}'`);
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

export function decodeBase64(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new SyntaxError(`Invalid base-64 text '${text}'`);
  }
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
