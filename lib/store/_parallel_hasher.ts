/**
 * A digest computed on a second thread while the caller produces the bytes, so that hashing a
 * large tree costs about the time of walking it rather than walking plus hashing. The caller
 * fills 1 MiB slots of a shared ring and hands each over with `publish`; once the thread runs, a
 * file can instead be handed over by path (`publishFile`) and the thread reads it itself: the
 * walker does so for every large file, and for small ones while the thread is short of work
 * (`hungry`), so that the reading is shared between the two threads; such a small file the walker
 * does not even stat: the thread writes the file's whole NAR node. From then on a slot holds a
 * program (bytes and files, in order) rather than bytes only, so that many small files need one
 * slot. The thread starts only once a few slots are queued (small inputs are hashed inline), and
 * if it cannot start, or is not ready when the input ends, the caller's thread hashes the queue.
 * The shared ring (33 MiB) is only allocated once a second buffer is handed over: an input that
 * fits one buffer (most build outputs, every `.drv`) is hashed inline from reused plain buffers.
 */

import {
  createHasher,
  DIGESTS_SOURCE,
  Hash,
  type HashAlgorithm,
  type Hasher,
  hashSize,
  REGULAR_FILE_TOKENS,
} from "../hashing/mod.ts";

const SLOT_SIZE = 1 << 20;
/**
 * The thread reads files in pieces this big: small enough to stay in a core's L2 cache between
 * the read and the digest (1 MiB pieces cost a third more kernel time in copies on 2-core EPYC).
 */
const FILE_PIECE = 1 << 16;
const SLOTS = 32;
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

// Control words (Int32) at the start of the shared buffer, then one length per slot: n >= 0 for
// n bytes, -n for a program of n bytes, a sequence of records each starting with an Int32 r:
// r >= 0 for r bytes that follow, -r for a file whose contents come next: float64 size, then its
// path, r bytes of UTF-8 with the terminating NUL. Size -1 stands for the file's whole NAR node from
// its "(" to its padding, which the thread writes after a stat of its own; it counts those bytes,
// and leaves their sum (float64) at ELSEWHERE_AT with the digest.
const PRODUCED = 0;
const CONSUMED = 1;
const STATE = 2; // 0 running, 1 input complete, 2 cancelled
const READY = 3;
const DIGEST_LENGTH = 4;
const ERROR_LENGTH = 5;
const LENGTHS = 8;
const CONTROL_BYTES = (LENGTHS + SLOTS) * 4;
const DIGEST_AT = CONTROL_BYTES + SLOTS * SLOT_SIZE;
const ERROR_AT = DIGEST_AT + 64;
const ERROR_BYTES = 8192;
const ELSEWHERE_AT = ERROR_AT + ERROR_BYTES;
const SHARED_BYTES = ELSEWHERE_AT + 8;
const O_RDONLY_CLOEXEC = 0o2000000;
const AT_EMPTY_PATH = 0x1000;
const STATX_TYPE_MODE_SIZE = 0x1 | 0x2 | 0x200;
/** What a program counts a file of unknown size as (see PROGRAM_BYTES). */
const NOMINAL_FILE_BYTES = 1 << 14;

const WORKER_SOURCE = `
${DIGESTS_SOURCE}
self.onmessage = ({ data: { sab, algorithm, tokens } }) => {
  const ctl = new Int32Array(sab, 0, ${LENGTHS + SLOTS});
  const data = new Uint8Array(sab, ${CONTROL_BYTES}, ${SLOTS * SLOT_SIZE});
  const hash = openDigests()(algorithm);
  const own = new Uint8Array(${FILE_PIECE});
  let libc;
  try {
    libc = Deno.dlopen("libc.so.6", {
      open: { parameters: ["buffer", "i32"], result: "i32" },
      read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
      close: { parameters: ["i32"], result: "i32" },
      statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
    }).symbols;
  } catch {
    // no FFI: Deno's ops
  }
  const statx = new Uint8Array(256);
  const statxView = new DataView(statx.buffer);
  const noPath = new Uint8Array(1);
  const sizeBytes = new Uint8Array(8);
  const sizeView = new DataView(sizeBytes.buffer);
  const zeros = new Uint8Array(8);
  let elsewhere = 0;
  // The file whose NUL-terminated path is at data[at, end), opened through libc where it can be.
  const openFile = (at, end) => {
    const path = () => new TextDecoder().decode(data.slice(at, end - 1));
    const fd = libc ? libc.open(data.subarray(at, end), ${O_RDONLY_CLOEXEC}) : -1;
    if (fd < 0) {
      const file = Deno.openSync(path());
      return {
        path,
        stat() {
          const info = file.statSync();
          return { regular: info.isFile, executable: (info.mode & 0o100) !== 0, size: info.size };
        },
        read: (into) => file.readSync(into) ?? 0,
        close: () => file.close(),
      };
    }
    return {
      path,
      stat() {
        if (libc.statx(fd, noPath, ${AT_EMPTY_PATH}, ${STATX_TYPE_MODE_SIZE}, statx) !== 0) {
          throw new Deno.errors.Interrupted("Cannot stat '" + path() + "'");
        }
        const mode = statxView.getUint16(0x1c, true);
        const size = Number(statxView.getBigUint64(0x28, true));
        return { regular: (mode & 0o170000) === 0o100000, executable: (mode & 0o100) !== 0, size };
      },
      read(into) {
        const n = Number(libc.read(fd, into, BigInt(into.length)));
        if (n < 0) throw new Deno.errors.Interrupted("Reading '" + path() + "' failed");
        return n;
      },
      close: () => libc.close(fd),
    };
  };
  // Hashes the file's contents (size bytes), or with size -1 its whole node.
  const hashFile = (at, end, size) => {
    const file = openFile(at, end);
    try {
      let pad = 0;
      if (size < 0) {
        const info = file.stat();
        if (!info.regular) throw new RangeError("File '" + file.path() + "' changed its type");
        const start = info.executable ? tokens.executable : tokens.plain;
        size = info.size;
        pad = (8 - (size % 8)) % 8;
        sizeView.setBigUint64(0, BigInt(size), true);
        hash.update(start);
        hash.update(sizeBytes);
        elsewhere += start.length + 8 + size + pad;
      }
      for (let left = size; left > 0;) {
        const n = file.read(own.subarray(0, Math.min(left, own.length)));
        if (n === 0) throw new RangeError("File '" + file.path() + "' shrank while being read");
        hash.update(own.subarray(0, n));
        left -= n;
      }
      if (pad > 0) hash.update(zeros.subarray(0, pad));
    } finally {
      file.close();
    }
  };
  const runProgram = (start, length) => {
    const view = new DataView(sab, ${CONTROL_BYTES} + start, length);
    for (let at = 0; at < length;) {
      const r = view.getInt32(at, true);
      at += 4;
      if (r >= 0) {
        hash.update(data.subarray(start + at, start + at + r));
        at += r;
      } else {
        hashFile(start + at + 8, start + at + 8 - r, view.getFloat64(at, true));
        at += 8 - r;
      }
    }
  };
  Atomics.store(ctl, ${READY}, 1);
  Atomics.notify(ctl, ${READY});
  let consumed = 0;
  try {
    for (;;) {
      const state = Atomics.load(ctl, ${STATE});
      if (state === 2) return;
      const produced = Atomics.load(ctl, ${PRODUCED});
      if (consumed < produced) {
        const start = (consumed % ${SLOTS}) * ${SLOT_SIZE};
        const length = ctl[${LENGTHS} + consumed % ${SLOTS}];
        if (length >= 0) hash.update(data.subarray(start, start + length));
        else runProgram(start, -length);
        Atomics.store(ctl, ${CONSUMED}, ++consumed);
        Atomics.notify(ctl, ${CONSUMED});
      } else if (state === 1) {
        const digest = hash.digest();
        new Float64Array(sab, ${ELSEWHERE_AT}, 1)[0] = elsewhere;
        new Uint8Array(sab, ${DIGEST_AT}, digest.length).set(digest);
        Atomics.store(ctl, ${DIGEST_LENGTH}, digest.length);
        Atomics.notify(ctl, ${DIGEST_LENGTH});
        return;
      } else {
        Atomics.wait(ctl, ${PRODUCED}, produced);
      }
    }
  } catch (e) {
    const text = new TextEncoder().encode(e.name + "\\n" + e.message).subarray(0, ${ERROR_BYTES});
    new Uint8Array(sab, ${ERROR_AT}, text.length).set(text);
    Atomics.store(ctl, ${ERROR_LENGTH}, text.length);
    Atomics.notify(ctl, ${CONSUMED});
    Atomics.notify(ctl, ${DIGEST_LENGTH});
  }
};
`;

let workerUrl: string | undefined;
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
   * Has the thread read and hash `size` bytes of the file at `path`, in the order of everything
   * published, instead of the buffer last given out (which stays empty); without `size`, the
   * file's whole NAR node (see `NarWriter.fileElsewhere`), after a stat of its own, the
   * bytes of which {@link bytesElsewhere} counts. Returns the next buffer to fill. A failure to
   * read surfaces from a later call or from `digest`.
   */
  publishFile(path: string, size?: number): Uint8Array {
    // An empty slot of bytes (given out before the thread ran) becomes a program.
    const at = this.#programAt ?? 0;
    // At least PROGRAM_ROOM is left (see #recorded): the path fits, with the next record's header.
    const into = this.#slot(this.#produced % SLOTS).subarray(at + 12, SLOT_SIZE - 4);
    const { read, written } = encoder.encodeInto(path, into);
    if (read !== path.length || written === into.length) {
      throw new RangeError(`Path '${path}' is too long`);
    }
    into[written] = 0;
    const view = this.#view();
    view.setInt32(at, -(written + 1), true);
    view.setFloat64(at + 4, size ?? -1, true);
    this.#programAt = at + 12 + written + 1;
    return this.#recorded(size ?? NOMINAL_FILE_BYTES);
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
    workerUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
    try {
      this.#worker = new Worker(workerUrl, { type: "module" });
    } catch {
      threadsBroken = true;
      return this.#hashInline();
    }
    this.#worker.onerror = (e) => e.preventDefault(); // a broken thread shows as no progress
    this.#worker.postMessage({
      sab: this.#sab,
      algorithm: this.#algorithm,
      tokens: REGULAR_FILE_TOKENS,
    });
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
        throw new Error("Internal error: the hashing thread stopped making progress");
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
