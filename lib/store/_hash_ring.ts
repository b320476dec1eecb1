/**
 * The shared memory between a {@link ParallelHasher} and its hashing thread (`_hash_worker.ts`):
 * control words (Int32), one length per slot, the slots, then the digest, an error's text and a
 * byte count. A slot's length is n >= 0 for n bytes, -n for a program of n bytes: a sequence of
 * records each starting with an Int32 r: r >= 0 for r bytes that follow, -r for a file whose whole
 * NAR node the thread writes: an Int32 mode (0 plain, 1 executable, -1 unknown), a float64 size
 * (-1 unknown), then its path, r bytes of UTF-8 with the terminating NUL. An unknown mode or size
 * the thread learns from a stat of its own. It counts the bytes of the nodes it writes, and
 * leaves their sum (float64) at ELSEWHERE_AT with the digest.
 */

import type { HashAlgorithm } from "../hashing/mod.ts";

export const SLOT_SIZE = 1 << 20;
export const SLOTS = 32;
/** Control words: slots handed over, slots hashed, STATE, and the thread's signals. */
export const PRODUCED = 0;
export const CONSUMED = 1;
/** 0 running, 1 input complete, 2 cancelled. */
export const STATE = 2;
export const READY = 3;
export const DIGEST_LENGTH = 4;
export const ERROR_LENGTH = 5;
export const LENGTHS = 8;
export const CONTROL_BYTES = (LENGTHS + SLOTS) * 4;
export const DIGEST_AT = CONTROL_BYTES + SLOTS * SLOT_SIZE;
export const ERROR_AT = DIGEST_AT + 64;
export const ERROR_BYTES = 8192;
export const ELSEWHERE_AT = ERROR_AT + ERROR_BYTES;
export const SHARED_BYTES = ELSEWHERE_AT + 8;
/** Bytes of a file record before its path. */
export const FILE_RECORD_HEAD = 16;

/** What the hashing thread is sent first (and only). */
export interface HashJob {
  sab: SharedArrayBuffer;
  algorithm: HashAlgorithm;
}
