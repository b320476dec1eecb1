/**
 * Spare buffers for the whole NARs that a copy into a cache dumps. Filling a buffer again costs a
 * fraction of a fresh one, whose pages the kernel zeroes and maps as they are first touched and
 * which the garbage collector must later find; a copy of a closure goes through hundreds of
 * megabytes of them (`copy --to` ~10% faster). Buffers come back from the codec workers once they
 * have compressed them; a few are kept, for whichever NAR fits next.
 */

/** Buffers smaller than this are not worth keeping. */
const MIN_BYTES = 64 << 10;
const MAX_SPARES = 16;
const spares: ArrayBuffer[] = [];

/**
 * A buffer of at least `size` bytes: the smallest spare that fits, else a new one with room to
 * spare (pages never touched cost nothing), so that it fits the next NAR of about that size too.
 */
export function takeBuffer(size: number): ArrayBuffer {
  if (size < MIN_BYTES) return new ArrayBuffer(size);
  let best = -1;
  for (const [i, spare] of spares.entries()) {
    if (spare.byteLength >= size && (best < 0 || spare.byteLength < spares[best].byteLength)) {
      best = i;
    }
  }
  if (best >= 0) return spares.splice(best, 1)[0];
  return new ArrayBuffer(Math.ceil((size + (size >> 3)) / 4096) * 4096);
}

/** Takes `buffer` back, to fill again; its holder must not use it any more. */
export function giveBuffer(buffer: ArrayBuffer | undefined): void {
  if (buffer === undefined || buffer.detached || buffer.byteLength < MIN_BYTES) return;
  if (spares.length === MAX_SPARES) spares.shift();
  spares.push(buffer);
}
