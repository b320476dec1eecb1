/**
 * Binary cache signing keys and signatures in Nix's text forms (Ed25519, as libsodium makes them).
 *
 * Secret key: `name:base64(32-byte seed ‖ 32-byte public key)`; public key: `name:base64(32 bytes)`;
 * signature: `name:base64(64 bytes)` over a path's fingerprint. Ed25519 signatures are
 * deterministic (RFC 8032), so kiln's equal Nix's byte for byte. Signing and verifying go through
 * `node:crypto`, which is synchronous, so parsing and checking many narinfos needs no awaits;
 * it is loaded at the first key used, not with this module (it costs ~40 ms of start-up).
 */

import type { KeyObject } from "node:crypto";
import { decodeBase64, encodeBase64, equalBytes, type Hash } from "../hashing/mod.ts";

const SEED_BYTES = 32;
const PUBLIC_KEY_BYTES = 32;
const SIGNATURE_BYTES = 64;
/** DER header of an Ed25519 PKCS#8 private key, followed by the 32-byte seed. */
const PKCS8_PREFIX = [
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x04,
  0x22,
  0x04,
  0x20,
];
/** DER header of an Ed25519 SubjectPublicKeyInfo, followed by the 32-byte key. */
const SPKI_PREFIX = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/** A signing key: its name and the 32-byte Ed25519 seed with the public key it yields. */
export interface SecretKey {
  readonly name: string;
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** A verification key: its name (matched against a signature's) and 32 key bytes. */
export interface PublicKey {
  readonly name: string;
  readonly key: Uint8Array;
}

/** A new random key pair named `name`. */
export function generateKeyPair(name: string): { secretKey: SecretKey; publicKey: PublicKey } {
  validateKeyName(name);
  const seed = crypto.getRandomValues(new Uint8Array(SEED_BYTES));
  const secretKey = { name, seed, publicKey: derivePublicKey(seed) };
  return { secretKey, publicKey: publicKeyOf(secretKey) };
}

/** Throws a SyntaxError unless `name` can name a key: non-empty, no ':' and no white space. */
export function validateKeyName(name: string): void {
  if (name === "") throw new SyntaxError("Key name is empty");
  if (/[:\s]/.test(name)) {
    throw new SyntaxError(`Key name '${name}' contains ':' or white space`);
  }
}

/** Parses `name:base64(seed‖pk)`; surrounding white space (a file's newline) is ignored. */
export function parseSecretKey(text: string): SecretKey {
  const { name, bytes } = parseNamedBase64(text.trim(), "Secret key");
  if (bytes.length !== SEED_BYTES + PUBLIC_KEY_BYTES) {
    throw new SyntaxError(
      `Secret key '${name}' is not valid: ${bytes.length} bytes, expected ${
        SEED_BYTES + PUBLIC_KEY_BYTES
      }`,
    );
  }
  const seed = bytes.slice(0, SEED_BYTES);
  const publicKey = bytes.slice(SEED_BYTES);
  if (!equalBytes(derivePublicKey(seed), publicKey)) {
    throw new SyntaxError(`Secret key '${name}' is not valid: its public half does not match`);
  }
  return { name, seed, publicKey };
}

/** `name:base64(seed‖pk)`, as `nix-store --generate-binary-cache-key` writes it. */
export function printSecretKey(key: SecretKey): string {
  const bytes = new Uint8Array(SEED_BYTES + PUBLIC_KEY_BYTES);
  bytes.set(key.seed);
  bytes.set(key.publicKey, SEED_BYTES);
  return `${key.name}:${encodeBase64(bytes)}`;
}

/** Parses `name:base64(32 bytes)`; surrounding white space is ignored. */
export function parsePublicKey(text: string): PublicKey {
  const { name, bytes } = parseNamedBase64(text.trim(), "Public key");
  if (bytes.length !== PUBLIC_KEY_BYTES) {
    throw new SyntaxError(
      `Public key '${name}' is not valid: ${bytes.length} bytes, expected ${PUBLIC_KEY_BYTES}`,
    );
  }
  return { name, key: bytes };
}

/** `name:base64(32 bytes)`. */
export function printPublicKey(key: PublicKey): string {
  return `${key.name}:${encodeBase64(key.key)}`;
}

/** The public key that verifies what `secret` signs. */
export function publicKeyOf(secret: SecretKey): PublicKey {
  return { name: secret.name, key: secret.publicKey };
}

/** What a path's fingerprint covers. */
export interface FingerprintInput {
  narHash: Hash;
  narSize: number;
  /** Full store paths. */
  references: Iterable<string>;
}

/**
 * The text Nix signs for a store path: `1;<path>;<algo:nix32 narHash>;<narSize>;<refs>`, the
 * references as full paths, sorted, joined by ','. A zero NAR size is an error, as in Nix.
 */
export function fingerprintPath(storePath: string, info: FingerprintInput): string {
  if (info.narSize <= 0) {
    throw new RangeError(
      `Cannot compute the fingerprint of '${storePath}': its NAR size is not known`,
    );
  }
  const refs = [...info.references].sort().join(",");
  return `1;${storePath};${info.narHash.toNix32Prefixed()};${info.narSize};${refs}`;
}

/** Signs `fingerprint`: `<key name>:base64(64-byte Ed25519 signature)`. */
export function signFingerprint(secret: SecretKey, fingerprint: string): string {
  const signature = nodeCrypto().sign(
    null,
    new TextEncoder().encode(fingerprint),
    keyObject(secret.seed, "private"),
  );
  return `${secret.name}:${encodeBase64(new Uint8Array(signature))}`;
}

/**
 * Whether `signature` (`name:base64`) is a valid signature of `fingerprint` by the key of that
 * name among `keys`. A signature by an unknown key, or one that is malformed, is not valid.
 */
export function verifySignature(
  fingerprint: string,
  signature: string,
  keys: Iterable<PublicKey>,
): boolean {
  const colon = signature.indexOf(":");
  if (colon <= 0) return false;
  const name = signature.slice(0, colon);
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64(signature.slice(colon + 1));
  } catch {
    return false;
  }
  if (bytes.length !== SIGNATURE_BYTES) return false;
  const data = new TextEncoder().encode(fingerprint);
  for (const key of keys) {
    if (key.name !== name) continue;
    if (nodeCrypto().verify(null, data, keyObject(key.key, "public"), bytes)) return true;
  }
  return false;
}

/** Whether at least one of `signatures` is valid for `fingerprint` under `trustedKeys`. */
export function verifySignatures(
  fingerprint: string,
  signatures: Iterable<string>,
  trustedKeys: Iterable<PublicKey>,
): boolean {
  const keys = [...trustedKeys];
  for (const signature of signatures) {
    if (verifySignature(fingerprint, signature, keys)) return true;
  }
  return false;
}

function parseNamedBase64(text: string, what: string): { name: string; bytes: Uint8Array } {
  const colon = text.indexOf(":");
  if (colon <= 0 || colon === text.length - 1) {
    throw new SyntaxError(`${what} is corrupt: expected 'name:base64'`);
  }
  const name = text.slice(0, colon);
  try {
    return { name, bytes: decodeBase64(text.slice(colon + 1)) };
  } catch {
    throw new SyntaxError(`${what} '${name}' is corrupt: its key is not valid base64`);
  }
}

/** Key objects made so far, by the key bytes they were made of: a copy signs every path. */
const keyObjects = new WeakMap<Uint8Array, KeyObject>();

/** The KeyObject of a secret key's seed or of a public key's bytes, made once per array. */
function keyObject(bytes: Uint8Array, kind: "private" | "public"): KeyObject {
  let key = keyObjects.get(bytes);
  if (key === undefined) {
    const prefix = kind === "private" ? PKCS8_PREFIX : SPKI_PREFIX;
    const der = new Uint8Array(prefix.length + bytes.length);
    der.set(prefix);
    der.set(bytes, prefix.length);
    const { createPrivateKey, createPublicKey } = nodeCrypto();
    // deno-lint-ignore no-process-global -- as in nodeCrypto()
    const { Buffer } = process.getBuiltinModule("node:buffer");
    key = kind === "private"
      ? createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" })
      : createPublicKey({ key: Buffer.from(der), format: "der", type: "spki" });
    keyObjects.set(bytes, key);
  }
  return key;
}

function derivePublicKey(seed: Uint8Array): Uint8Array {
  const der = nodeCrypto().createPublicKey(keyObject(seed, "private"))
    .export({ format: "der", type: "spki" });
  return new Uint8Array(der.subarray(der.length - PUBLIC_KEY_BYTES));
}

function nodeCrypto(): typeof import("node:crypto") {
  // deno-lint-ignore no-process-global -- the synchronous way to load a built-in module lazily
  return process.getBuiltinModule("node:crypto");
}
