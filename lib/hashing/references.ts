/**
 * Reference scanning, as Nix's `RefScanSink`: finds which of a set of store path hash parts occur
 * anywhere in a byte stream (file contents, names, symlink targets: all of a NAR).
 */

import { HASH_PART_LENGTH } from "./store_path.ts";
import { isNixBase32Digit } from "./nix_base32.ts";

/** A set of hash parts, or a map keyed by them. */
export type HashParts = Pick<ReadonlySet<string>, "has" | "size">;

const IS_DIGIT = new Uint8Array(256).map((_, c) => isNixBase32Digit(c) ? 1 : 0);
const decoder = new TextDecoder();

/** Feeds chunks in with `update`; `found` holds the hash parts seen so far. */
export class ReferenceScanner {
  readonly found = new Set<string>();
  readonly #candidates: HashParts;
  #tail = new Uint8Array(0);

  /** `hashParts`: the 32-character hash parts to look for (not copied: a build's can be many). */
  constructor(hashParts: HashParts) {
    this.#candidates = hashParts;
  }

  update(chunk: Uint8Array): void {
    if (this.#candidates.size === this.found.size || chunk.length === 0) {
      this.#keepTail(chunk);
      return;
    }
    // Windows that straddle the previous chunk and this one.
    if (this.#tail.length > 0) {
      const seam = new Uint8Array(this.#tail.length + Math.min(chunk.length, HASH_PART_LENGTH - 1));
      seam.set(this.#tail);
      seam.set(chunk.subarray(0, seam.length - this.#tail.length), this.#tail.length);
      this.#scan(seam);
    }
    this.#scan(chunk);
    this.#keepTail(chunk);
  }

  #keepTail(chunk: Uint8Array): void {
    const keep = HASH_PART_LENGTH - 1;
    if (chunk.length >= keep) {
      this.#tail = chunk.slice(chunk.length - keep);
    } else {
      const joined = new Uint8Array(Math.min(keep, this.#tail.length + chunk.length));
      const fromTail = joined.length - chunk.length;
      joined.set(this.#tail.subarray(this.#tail.length - fromTail));
      joined.set(chunk, fromTail);
      this.#tail = joined;
    }
  }

  /** Checks every 32-byte window, right to left, skipping past any byte outside nix32. */
  #scan(data: Uint8Array): void {
    const last = data.length - HASH_PART_LENGTH;
    let i = 0;
    outer: while (i <= last) {
      for (let j = HASH_PART_LENGTH - 1; j >= 0; j--) {
        if (!IS_DIGIT[data[i + j]]) {
          i += j + 1;
          continue outer;
        }
      }
      const part = decoder.decode(data.subarray(i, i + HASH_PART_LENGTH));
      if (this.#candidates.has(part)) this.found.add(part);
      i++;
    }
  }
}
