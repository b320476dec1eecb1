/**
 * A digest computed on a second thread while the caller produces the bytes, so that hashing a
 * large tree costs about the time of walking it rather than walking plus hashing. The caller
 * fills 1 MiB slots of a shared ring and hands each over with `publish`; once the thread runs, a
 * file can instead be handed over by path (`publishFile`) and the thread reads it itself: the
 * walker does so for every large file, and for small ones while the thread is short of work
 * (`hungry`), so that the reading is shared between the two threads; the thread
 * (`_hash_worker.ts`) writes such a file's whole NAR node, and stats a small one itself: the walker
 * does not. From then on a slot holds a program (bytes and files, in order) rather than bytes only,
 * so that many small files need one slot. The thread starts only once a few slots are queued
 * (small inputs are hashed inline), and if it cannot start, or is not ready when the input ends,
 * the caller's thread hashes the queue.
 * The shared ring (33 MiB) is only allocated once a second buffer is handed over: an input that
 * fits one buffer (most build outputs, every `.drv`) is hashed inline from reused plain buffers.
 */

import { createHasher, Hash, type HashAlgorithm, type Hasher, hashSize } from "../hashing/mod.ts";
import {
  CONSUMED,
  CONTROL_BYTES,
  DIGEST_AT,
  DIGEST_LENGTH,
  ELSEWHERE_AT,
  ERROR_AT,
  ERROR_LENGTH,
  FILE_RECORD_HEAD,
  type HashJob,
  LENGTHS,
  PRODUCED,
  READY,
  SHARED_BYTES,
  SLOT_SIZE,
  SLOTS,
  STATE,
} from "./_hash_ring.ts";
import { InternalError } from "../sys/mod.ts";

/** A program slot is handed over once it stands for this many bytes (or its room runs out). */
const PROGRAM_BYTES = 1 << 18;
/** Room a program slot must keep for the next record; less, and it is handed over. */
const PROGRAM_ROOM = 1 << 16;
/** The thread is `hungry` while at most this many handed-over slots wait for it. */
const HUNGRY_SLOTS = 4;
/** Slots queued before the thread is started. */
const START_AFTER = 4;
/** How long a starting thread is waited for before hashing inline instead (for good). */
const START_MS = 2_000;
/** How long a running thread may make no progress before it is declared broken. */
const STALL_MS = 30_000;
/** What a program counts a file of unknown size as (see PROGRAM_BYTES). */
const NOMINAL_FILE_BYTES = 1 << 14;

/** Set when a thread failed to start: this process then always hashes inline. */
let threadsBroken = false;
const encoder = new TextEncoder();
/** Plain buffers for hashers that have no ring yet, reused from one hasher to the next. */
const spareBuffers: Uint8Array[] = [];

/** See the module comment. Use with `using`: disposal stops the thread on early exit. */
export class ParallelHasher implements Disposable {
  readonly #algorithm: HashAlgorithm;
  #sab: SharedArrayBuffer | undefined;
  #ctl: Int32Array<ArrayBufferLike> = new Int32Array(LENGTHS + SLOTS);
  #produced = 0;
  #worker: Worker | undefined;
  #inline: Hasher | undefined;
  /** Before the ring: the plain buffers given out, and the one filled chunk handed over. */
  readonly #plain: Uint8Array[] = [];
  #first: Uint8Array | undefined;
  /** In a program slot: where its next record starts; undefined in a slot of bytes. */
  #programAt: number | undefined;
  /** The bytes the open program stands for. */
  #programBytes = 0;
  readonly #takesFiles: boolean;
  #bytesElsewhere = 0;

  /**
   * `options.files`: the caller may hand over files (`publishFile`); slots then become programs
   * once the thread runs, so the buffers given out may be smaller than a slot. Without it every
   * buffer given out is a whole slot.
   */
  constructor(algorithm: HashAlgorithm, options: { files?: boolean } = {}) {
    this.#algorithm = algorithm;
    this.#takesFiles = options.files ?? false;
  }

  /** The first buffer to fill. */
  get buffer(): Uint8Array {
    return this.#sab ? this.#slot(0) : this.#plainBuffer(0);
  }

  /** Hands over `filled` (a prefix of the last buffer given out); returns the next to fill. */
  publish(filled: Uint8Array): Uint8Array {
    if (this.#inline) {
      this.#inline.update(filled);
      return this.#sab ? this.#slot(0) : this.#plainBuffer(0);
    }
    if (!this.#sab) {
      if (this.#first === undefined) {
        this.#first = filled;
        return this.#plainBuffer(1);
      }
      this.#makeRing();
      this.#slot(this.#produced % SLOTS).set(filled);
    }
    if (this.#programAt === undefined) return this.#commit(filled.length);
    this.#view().setInt32(this.#programAt, filled.length, true);
    this.#programAt += 4 + filled.length;
    return this.#recorded(filled.length);
  }

  /** Whether {@link publishFile} may be used now: files were asked for and the thread runs. */
  get takesFiles(): boolean {
    return this.#takesFiles && !this.#inline && this.#worker !== undefined &&
      Atomics.load(this.#ctl, READY) === 1;
  }

  /** Whether the thread is running and short of work: handing it small files pays then. */
  get hungry(): boolean {
    return this.takesFiles && this.#produced - Atomics.load(this.#ctl, CONSUMED) <= HUNGRY_SLOTS;
  }

  /**
   * Hands over `filled` (as {@link publish}), then has the thread write the whole NAR node of the
   * regular file at `path`, reading the file itself, in the order of everything published:
   * with `file`, of that mode and size, without it after a stat of its own. {@link bytesElsewhere}
   * counts the bytes of such nodes. Returns the next buffer to fill. A failure to read surfaces
   * from a later call or from `digest`.
   */
  publishFile(
    filled: Uint8Array,
    path: string,
    file?: { executable: boolean; size: number },
  ): Uint8Array {
    this.publish(filled);
    const at = this.#programAt;
    if (at === undefined) throw new InternalError("a file handed over to no thread");
    // At least PROGRAM_ROOM is left (see #recorded): the path fits, with the next record's header.
    const into = this.#slot(this.#produced % SLOTS).subarray(at + FILE_RECORD_HEAD, SLOT_SIZE - 4);
    const { read, written } = encoder.encodeInto(path, into);
    if (read !== path.length || written === into.length) {
      throw new RangeError(`Path '${path}' is too long`);
    }
    into[written] = 0;
    const view = this.#view();
    view.setInt32(at, -(written + 1), true);
    view.setInt32(at + 4, file === undefined ? -1 : file.executable ? 1 : 0, true);
    view.setFloat64(at + 8, file?.size ?? -1, true);
    this.#programAt = at + FILE_RECORD_HEAD + written + 1;
    return this.#recorded(file?.size ?? NOMINAL_FILE_BYTES);
  }

  /**
   * Resolves once the thread has started and is ready for work (true), or false when it has not
   * been started, or has stopped.
   */
  threadReady(): Promise<boolean> {
    if (this.#worker === undefined) return Promise.resolve(false);
    const ctl = this.#ctl as Int32Array<SharedArrayBuffer>;
    const { async, value } = Atomics.waitAsync(ctl, READY, 0);
    const ready = () => this.#worker !== undefined && Atomics.load(ctl, READY) === 1;
    return async ? value.then(ready) : Promise.resolve(ready());
  }

  /** After {@link digest}: the NAR bytes of the nodes the thread wrote itself. */
  get bytesElsewhere(): number {
    return this.#bytesElsewhere;
  }

  /** The digest of everything published; ends the thread. */
  digest(): Hash {
    if (!this.#sab && !this.#inline) {
      const hasher = createHasher(this.#algorithm);
      if (this.#first !== undefined) hasher.update(this.#first);
      this.#releasePlain();
      return hasher.digest();
    }
    if (this.#worker && Atomics.load(this.#ctl, READY) === 0) this.#hashInline();
    if (!this.#worker) {
      if (!this.#inline) this.#hashInline();
      return this.#inline!.digest();
    }
    if (this.#programAt) this.#commit(-this.#programAt);
    Atomics.store(this.#ctl, STATE, 1);
    Atomics.notify(this.#ctl, PRODUCED);
    this.#waitUntil(DIGEST_LENGTH, () => Atomics.load(this.#ctl, DIGEST_LENGTH) !== 0);
    const bytes = new Uint8Array(this.#sab!, DIGEST_AT, hashSize(this.#algorithm)).slice();
    this.#bytesElsewhere = new Float64Array(this.#sab!, ELSEWHERE_AT, 1)[0];
    this[Symbol.dispose]();
    return new Hash(this.#algorithm, bytes);
  }

  [Symbol.dispose](): void {
    this.#releasePlain();
    if (!this.#worker) return;
    Atomics.store(this.#ctl, STATE, 2);
    Atomics.notify(this.#ctl, PRODUCED);
    this.#worker.terminate();
    this.#worker = undefined;
    Atomics.notify(this.#ctl, READY); // for threadReady()
  }

  /** A record of `bytes` bytes of NAR was added to the open program: hands it over if due. */
  #recorded(bytes: number): Uint8Array {
    this.#programBytes += bytes;
    const at = this.#programAt!;
    if (SLOT_SIZE - at < PROGRAM_ROOM || this.#programBytes >= PROGRAM_BYTES) {
      return this.#commit(-at);
    }
    return this.#slot(this.#produced % SLOTS).subarray(at + 4);
  }

  /** Hands over the current slot; returns the next buffer: a program's once the thread runs. */
  #commit(length: number): Uint8Array {
    this.#ctl[LENGTHS + this.#produced % SLOTS] = length;
    Atomics.store(this.#ctl, PRODUCED, ++this.#produced);
    if (this.#worker) Atomics.notify(this.#ctl, PRODUCED);
    else if (this.#produced >= START_AFTER && !threadsBroken) this.#start();
    if (this.#produced - Atomics.load(this.#ctl, CONSUMED) >= SLOTS) this.#waitForSpace();
    const slot = this.#slot(this.#inline ? 0 : this.#produced % SLOTS);
    this.#programAt = this.takesFiles ? 0 : undefined;
    this.#programBytes = 0;
    return this.#programAt === undefined ? slot : slot.subarray(4);
  }

  /** The current slot as a DataView. */
  #view(): DataView {
    const at = CONTROL_BYTES + (this.#produced % SLOTS) * SLOT_SIZE;
    return new DataView(this.#sab!, at, SLOT_SIZE);
  }

  #slot(index: number): Uint8Array {
    return new Uint8Array(this.#sab!, CONTROL_BYTES + index * SLOT_SIZE, SLOT_SIZE);
  }

  #plainBuffer(index: number): Uint8Array {
    return this.#plain[index] ??= spareBuffers.pop() ?? new Uint8Array(SLOT_SIZE);
  }

  #releasePlain(): void {
    for (const buffer of this.#plain.splice(0)) {
      if (spareBuffers.length < 2) spareBuffers.push(buffer);
    }
    this.#first = undefined;
  }

  /** A second chunk arrived: moves the first into the shared ring, which is used from now on. */
  #makeRing(): void {
    this.#sab = new SharedArrayBuffer(SHARED_BYTES);
    this.#ctl = new Int32Array(this.#sab, 0, LENGTHS + SLOTS);
    const first = this.#first!;
    this.#slot(0).set(first);
    this.#releasePlain();
    this.#commit(first.length);
  }

  #start(): void {
    try {
      this.#worker = new Worker(new URL("./_hash_worker.ts", import.meta.url), { type: "module" });
    } catch {
      threadsBroken = true;
      return this.#hashInline();
    }
    this.#worker.onerror = (e) => {
      e.preventDefault(); // a broken thread shows as no progress
      Atomics.notify(this.#ctl, READY); // and to threadReady()
    };
    const job: HashJob = { sab: this.#sab!, algorithm: this.#algorithm };
    this.#worker.postMessage(job);
  }

  #waitForSpace(): void {
    if (Atomics.load(this.#ctl, READY) === 0) {
      Atomics.wait(this.#ctl, READY, 0, START_MS);
      if (Atomics.load(this.#ctl, READY) === 0) {
        threadsBroken = true;
        return this.#hashInline();
      }
    }
    this.#waitUntil(CONSUMED, () => this.#produced - Atomics.load(this.#ctl, CONSUMED) < SLOTS);
  }

  /**
   * Waits until `done()`, woken through control word `index`; rethrows the thread's failure, and
   * throws if it stalls.
   */
  #waitUntil(index: number, done: () => boolean): void {
    let last = Atomics.load(this.#ctl, CONSUMED);
    let since = Date.now();
    while (!done()) {
      const failed = Atomics.load(this.#ctl, ERROR_LENGTH);
      if (failed !== 0) this.#rethrow(failed);
      Atomics.wait(this.#ctl, index, Atomics.load(this.#ctl, index), 1000);
      const consumed = Atomics.load(this.#ctl, CONSUMED);
      if (consumed !== last) [last, since] = [consumed, Date.now()];
      if (Date.now() - since > STALL_MS) {
        throw new InternalError("the hashing thread stopped making progress");
      }
    }
  }

  /** Throws the thread's error again here, as the class it had where Deno has it. */
  #rethrow(length: number): never {
    const text = new TextDecoder().decode(new Uint8Array(this.#sab!, ERROR_AT, length).slice());
    const [name, message] = [text.slice(0, text.indexOf("\n")), text.slice(text.indexOf("\n") + 1)];
    this[Symbol.dispose]();
    const errors = Deno.errors as unknown as Record<string, ErrorConstructor | undefined>;
    const denoError = errors[name];
    throw name === "RangeError" ? new RangeError(message) : new (denoError ?? Error)(message);
  }

  /** Stops any thread that has not consumed anything and hashes the queued slots here. */
  #hashInline(): void {
    this[Symbol.dispose]();
    this.#inline = createHasher(this.#algorithm);
    for (let i = 0; i < this.#produced; i++) {
      this.#inline.update(this.#slot(i).subarray(0, this.#ctl[LENGTHS + i]));
    }
  }
}
