/**
 * The hashing thread of a {@link ParallelHasher} (started from `_parallel_hasher.ts`): hashes the
 * slots of the shared ring (`_hash_ring.ts`) as they are handed over, and for a file record
 * writes the file's whole NAR node itself, its framing from the NAR module and its contents read
 * through the walker's own file access.
 */

import {
  createHasher,
  type Hasher,
  NAR_FILE_HEAD_BYTES,
  NAR_FILE_TAIL_BYTES,
  writeNarFileHead,
  writeNarFileTail,
} from "../hashing/mod.ts";
import { type FileIo, openFileIo } from "./_file_io.ts";
import * as ring from "./_hash_ring.ts";

/**
 * Files are read in pieces this big: small enough to stay in a core's L2 cache between the read
 * and the digest (1 MiB pieces cost a third more kernel time in copies on 2-core EPYC).
 */
const FILE_PIECE = 1 << 16;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IXUSR = 0o100;

const decoder = new TextDecoder();

/** One job's state: the ring, the digest, and the file access of this thread. */
class RingHasher {
  readonly #ctl: Int32Array<SharedArrayBuffer>;
  readonly #data: Uint8Array<SharedArrayBuffer>;
  readonly #hash: Hasher;
  /** Opened for the first file record: a job of bytes only needs none. */
  #files: FileIo | undefined;
  readonly #piece = new Uint8Array(FILE_PIECE);
  readonly #frame = new Uint8Array(Math.max(NAR_FILE_HEAD_BYTES, NAR_FILE_TAIL_BYTES));
  /** Bytes of the nodes this thread wrote. */
  #elsewhere = 0;

  constructor(readonly job: ring.HashJob) {
    this.#ctl = new Int32Array(job.sab, 0, ring.LENGTHS + ring.SLOTS);
    this.#data = new Uint8Array(job.sab, ring.CONTROL_BYTES, ring.SLOTS * ring.SLOT_SIZE);
    this.#hash = createHasher(job.algorithm);
  }

  /** Hashes slots until the input is complete (then leaves the digest) or cancelled. */
  run(): void {
    const ctl = this.#ctl;
    Atomics.store(ctl, ring.READY, 1);
    Atomics.notify(ctl, ring.READY);
    for (let consumed = 0;;) {
      const state = Atomics.load(ctl, ring.STATE);
      if (state === 2) return;
      const produced = Atomics.load(ctl, ring.PRODUCED);
      if (consumed < produced) {
        const start = (consumed % ring.SLOTS) * ring.SLOT_SIZE;
        const length = ctl[ring.LENGTHS + consumed % ring.SLOTS];
        if (length >= 0) this.#hash.update(this.#data.subarray(start, start + length));
        else this.#runProgram(start, -length);
        Atomics.store(ctl, ring.CONSUMED, ++consumed);
        Atomics.notify(ctl, ring.CONSUMED);
      } else if (state === 1) {
        const digest = this.#hash.digest().bytes;
        new Float64Array(this.job.sab, ring.ELSEWHERE_AT, 1)[0] = this.#elsewhere;
        new Uint8Array(this.job.sab, ring.DIGEST_AT, digest.length).set(digest);
        Atomics.store(ctl, ring.DIGEST_LENGTH, digest.length);
        Atomics.notify(ctl, ring.DIGEST_LENGTH);
        return;
      } else {
        Atomics.wait(ctl, ring.PRODUCED, produced);
      }
    }
  }

  /** Leaves `error` for the caller's thread, which throws it again. */
  fail(error: unknown): void {
    const e = error instanceof Error ? error : new Error(String(error));
    const text = new TextEncoder().encode(`${e.name}\n${e.message}`).subarray(0, ring.ERROR_BYTES);
    new Uint8Array(this.job.sab, ring.ERROR_AT, text.length).set(text);
    Atomics.store(this.#ctl, ring.ERROR_LENGTH, text.length);
    Atomics.notify(this.#ctl, ring.CONSUMED);
    Atomics.notify(this.#ctl, ring.DIGEST_LENGTH);
  }

  #runProgram(start: number, length: number): void {
    const view = new DataView(this.job.sab, ring.CONTROL_BYTES + start, length);
    for (let at = 0; at < length;) {
      const r = view.getInt32(at, true);
      if (r >= 0) {
        this.#hash.update(this.#data.subarray(start + at + 4, start + at + 4 + r));
        at += 4 + r;
        continue;
      }
      const pathAt = start + at + ring.FILE_RECORD_HEAD;
      const path = decoder.decode(this.#data.slice(pathAt, pathAt - r - 1));
      this.#hashNode(path, view.getInt32(at + 4, true), view.getFloat64(at + 8, true));
      at += ring.FILE_RECORD_HEAD - r;
    }
  }

  /** Hashes the NAR node of the regular file at `path`; an unknown mode or size is stat'd. */
  #hashNode(path: string, mode: number, size: number): void {
    const files = this.#files ??= openFileIo();
    if (mode < 0 || size < 0) {
      const info = files.lstat(path);
      if ((info.mode & S_IFMT) !== S_IFREG) {
        throw new RangeError(`File '${path}' changed its type`);
      }
      mode = (info.mode & S_IXUSR) !== 0 ? 1 : 0;
      size = info.size;
    }
    const frame = this.#frame;
    const head = writeNarFileHead(frame, 0, mode === 1, size);
    this.#hash.update(frame.subarray(0, head));
    const file = files.open(path);
    try {
      for (let left = size; left > 0;) {
        const n = files.read(file, this.#piece.subarray(0, Math.min(left, FILE_PIECE)));
        if (n === 0) throw new RangeError(`File '${path}' shrank while being read`);
        this.#hash.update(this.#piece.subarray(0, n));
        left -= n;
      }
    } finally {
      files.close(file);
    }
    const tail = writeNarFileTail(frame, 0, size);
    this.#hash.update(frame.subarray(0, tail));
    this.#elsewhere += head + size + tail;
  }
}

/** This thread's global scope as a worker's (the project is checked with the window's types). */
const scope = self as unknown as { onmessage: (event: MessageEvent<ring.HashJob>) => void };

scope.onmessage = ({ data }) => {
  const hasher = new RingHasher(data);
  try {
    hasher.run();
  } catch (e) {
    hasher.fail(e);
  }
};
