/**
 * Message digests (md5, sha1, sha256, sha512) computed by OpenSSL's libcrypto through FFI where
 * it can be loaded (`libcrypto.so.3`, on any system with OpenSSL 3; Nix links it too), else by
 * `node:crypto`, loaded only then. Both are the same native code at the same speed (~1.3 GB/s of
 * sha256 here); the difference is start-up: loading `node:crypto` costs ~40 ms (in every kiln
 * command, and again in every thread that hashes), opening libcrypto ~3-8 ms; and a small digest
 * costs ~1.6 us instead of ~5.7.
 * Each thread that hashes (the hashing and codec workers too) opens its own.
 */

import { InternalError } from "../sys/mod.ts";

/** An incremental digest: `update` with bytes, then `digest` once. */
export interface Digest {
  update(bytes: Uint8Array): void;
  digest(): Uint8Array;
}

/** Makes digests of an algorithm named as OpenSSL and Node name them. */
export type DigestFactory = (algorithm: string) => Digest;

/**
 * The digest factory of this thread: libcrypto's where it loads, else `node:crypto`'s. A libcrypto
 * digest that is dropped without `digest()` frees its context when collected.
 */
export function openDigests(): DigestFactory {
  let lib;
  try {
    lib = Deno.dlopen("libcrypto.so.3", {
      EVP_get_digestbyname: { parameters: ["buffer"], result: "pointer" },
      EVP_MD_CTX_new: { parameters: [], result: "pointer" },
      EVP_MD_CTX_free: { parameters: ["pointer"], result: "void" },
      EVP_DigestInit_ex: { parameters: ["pointer", "pointer", "pointer"], result: "i32" },
      EVP_DigestUpdate: { parameters: ["pointer", "buffer", "usize"], result: "i32" },
      EVP_DigestFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
    }).symbols;
  } catch {
    // no FFI permission, or no OpenSSL 3
  }
  if (lib === undefined) {
    // deno-lint-ignore no-process-global -- the synchronous way to load a built-in module lazily
    const { createHash } = process.getBuiltinModule("node:crypto");
    return (algorithm) => {
      const hash = createHash(algorithm);
      return {
        update: (bytes) => void hash.update(bytes),
        digest: () => {
          const d = hash.digest();
          return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
        },
      };
    };
  }
  const symbols = lib;
  const kinds = new Map<string, Deno.PointerValue>();
  const freed = new FinalizationRegistry<Deno.PointerValue>((ctx) => symbols.EVP_MD_CTX_free(ctx));
  return (algorithm) => {
    let md = kinds.get(algorithm);
    if (md === undefined) {
      md = symbols.EVP_get_digestbyname(new TextEncoder().encode(algorithm + "\0"));
      if (md === null) throw new InternalError(`libcrypto has no ${algorithm}`);
      kinds.set(algorithm, md);
    }
    const ctx = symbols.EVP_MD_CTX_new();
    if (ctx === null || symbols.EVP_DigestInit_ex(ctx, md, null) !== 1) {
      throw new InternalError(`cannot start a ${algorithm} digest`);
    }
    const token = {};
    freed.register(token, ctx, token);
    let open = true;
    return {
      update(bytes) {
        if (!open) throw new InternalError("digest updated after it was finished");
        if (symbols.EVP_DigestUpdate(ctx, bytes, BigInt(bytes.length)) !== 1) {
          throw new InternalError(`${algorithm} digest update failed`);
        }
      },
      digest() {
        if (!open) throw new InternalError("digest finished twice");
        open = false;
        const out = new Uint8Array(64); // EVP_MAX_MD_SIZE
        const size = new Uint32Array(1);
        const ok = symbols.EVP_DigestFinal_ex(ctx, out, size);
        freed.unregister(token);
        symbols.EVP_MD_CTX_free(ctx);
        if (ok !== 1) throw new InternalError(`${algorithm} digest failed`);
        return out.subarray(0, size[0]);
      },
    };
  };
}
