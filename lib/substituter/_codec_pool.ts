/**
 * (De)compression on worker threads, so that substituting or copying a closure keeps every core
 * busy while the caller's thread unpacks, hashes and writes. Workers are made from inline code (a
 * Blob URL: a compiled kiln has no source files to load) and are ended as soon as no job is open
 * and no `holdCodecWorkers` holds them (an idle worker would keep the process alive). Two kinds
 * of job:
 * - xz streams (`codeOnWorker`): liblzma's WebAssembly module (compiled once here and posted to
 *   the workers) codes each input chunk the caller sends and answers with what it produced; a
 *   job's liblzma state stays in its worker.
 * - zstd in one piece (`codeWholeOnWorker`), for NARs small enough to hold in memory (most of
 *   them): libzstd's one-shot calls through FFI where `libzstd.so.1` loads (any Debian has it:
 *   dpkg needs it), else `node:zlib`'s (~1.3x slower). Deno runs `node:zlib`'s zstd on the calling
 *   thread, so without workers a copy compresses or decompresses on one core only.
 * If no worker can start (or, for xz, the module cannot be read), the caller's own codec runs.
 */

import { fileURLToPath } from "node:url";
import { DIGESTS_SOURCE, Hash, hashBytes } from "../hashing/mod.ts";

/** What a worker does to a stream's bytes. */
export type CodecKind = "xz-decode" | "xz-encode";

/** What a worker does to a whole input at once. */
export type WholeCodecKind = "zstd-decode" | "zstd-encode";

/** Options of {@link codeOnWorker} and {@link codeWholeOnWorker}. */
export interface CodecJobOptions {
  /** xz preset or zstd level (encoding). */
  level?: number;
  /** Decoding: fail once the output would pass this many bytes. */
  maxOutputLength?: number;
}

/** Options of {@link codeWholeOnWorker}. */
export interface WholeCodecJobOptions extends CodecJobOptions {
  /** Also compute the sha256 of the output, or of both sides (on the worker's thread). */
  hash?: "output" | "both";
  /**
   * Write the output to this new file (mode 0644) instead of returning it: the worker does, so
   * the output never crosses threads, and an encoder reuses its output buffer.
   */
  writeTo?: string;
}

/** What {@link codeWholeOnWorker} gives: the output, and the sha256 digests asked for. */
export interface WholeCodecResult {
  /** Absent when it went to `writeTo`. */
  output?: Uint8Array;
  /** Bytes of output. */
  size: number;
  /** The input's buffer, which the worker gives back when the output went to `writeTo`. */
  input?: ArrayBuffer;
  /** sha256 of the output, and of the input, as the job asked. */
  sha256?: { output: Hash; input?: Hash };
}

/** How long starting workers are waited for before coding on the caller's thread for good. */
const START_MS = 5_000;

const WORKER_SOURCE = `
${DIGESTS_SOURCE}
const digests = openDigests();
import { constants, zstdCompressSync, zstdDecompressSync } from "node:zlib";
const OUT_SIZE = ${1 << 20};
const STREAM_SIZE = 96; // lzma_stream on wasm32: next_in 0, avail_in 4, next_out 16, avail_out 20
const MESSAGES = {
  2: "no integrity check", 3: "unsupported integrity check", 5: "out of memory",
  6: "memory limit reached", 7: "file format not recognized", 8: "unsupported options",
  9: "data is corrupt", 10: "data is truncated", 11: "internal liblzma error",
};
let x, memory;
const jobs = new Map();
const u32 = () => new Uint32Array(memory.buffer);

function openXz(kind, level) {
  if (!x) throw new Error("Internal error: liblzma is not loaded in this worker");
  const strm = x.s(STREAM_SIZE);
  new Uint8Array(memory.buffer, strm, STREAM_SIZE).fill(0);
  const ret = kind === "xz-encode"
    ? x.m(strm, level, 4) // lzma_easy_encoder(preset, LZMA_CHECK_CRC64)
    : x.r(strm, 1n << 30n, 8); // lzma_stream_decoder(memlimit 1 GiB, LZMA_CONCATENATED)
  if (ret !== 0) {
    x.t(strm);
    throw new Error(MESSAGES[ret] ?? "liblzma error " + ret);
  }
  return { strm, out: x.s(OUT_SIZE) };
}

function endXz(job) {
  if (!job.xz) return;
  x.g(job.xz.strm);
  x.t(job.xz.strm);
  x.t(job.xz.out);
  job.xz = undefined;
}

function codeXz(job, chunk, end, emit) {
  const { strm, out } = job.xz;
  const inPtr = chunk.length > 0 ? x.s(chunk.length) : 0;
  try {
    if (inPtr) new Uint8Array(memory.buffer).set(chunk, inPtr);
    u32()[strm >> 2] = inPtr;
    u32()[(strm >> 2) + 1] = chunk.length;
    const action = end ? 3 : 0; // LZMA_FINISH : LZMA_RUN
    for (;;) {
      u32()[(strm >> 2) + 4] = out;
      u32()[(strm >> 2) + 5] = OUT_SIZE;
      const ret = x.f(strm, action);
      const produced = OUT_SIZE - u32()[(strm >> 2) + 5];
      if (produced > 0) emit(new Uint8Array(memory.buffer, out, produced));
      if (ret === 1) return; // LZMA_STREAM_END
      if (ret === 10 && action === 0) return; // LZMA_BUF_ERROR: needs more input
      if (ret !== 0) throw new Error(MESSAGES[ret] ?? "liblzma error " + ret);
      if (action === 0 && u32()[(strm >> 2) + 1] === 0 && u32()[(strm >> 2) + 5] > 0) return;
    }
  } finally {
    if (inPtr) x.t(inPtr);
  }
}

// libzstd itself where it can be loaded (it is on every Debian, as dpkg needs it): ~1.3x faster
// than node:zlib's zstd here, and a decoder writes straight into a buffer of the size it may fill.
const zstd = (() => {
  try {
    const { symbols } = Deno.dlopen("libzstd.so.1", {
      ZSTD_createCCtx: { parameters: [], result: "pointer" },
      ZSTD_createDCtx: { parameters: [], result: "pointer" },
      ZSTD_compressBound: { parameters: ["usize"], result: "usize" },
      ZSTD_compressCCtx: {
        parameters: ["pointer", "buffer", "usize", "buffer", "usize", "i32"],
        result: "usize",
      },
      ZSTD_decompressDCtx: {
        parameters: ["pointer", "buffer", "usize", "buffer", "usize"],
        result: "usize",
      },
      ZSTD_getErrorName: { parameters: ["usize"], result: "pointer" },
    });
    return { ...symbols, cctx: symbols.ZSTD_createCCtx(), dctx: symbols.ZSTD_createDCtx() };
  } catch {
    return undefined;
  }
})();
// zstd's error codes that a damaged or foreign input gives, in words a user can act on.
const ZSTD_ERRORS = {
  10: "unknown frame descriptor (not zstd data, or bytes after the last frame)",
  20: "data is corrupt",
  22: "data is corrupt (checksum mismatch)",
  72: "data is truncated",
};

// A size_t result of libzstd as a number; an error code it holds is thrown.
function zstdResult(result, bound) {
  const value = BigInt(result);
  if (value <= 0xffffffffffffff00n) return Number(value);
  const code = Number((1n << 64n) - value);
  if (code === 70) throw new Error("the output is larger than " + bound + " bytes");
  throw new Error(
    ZSTD_ERRORS[code] ?? Deno.UnsafePointerView.getCString(zstd.ZSTD_getErrorName(result)),
  );
}

let encoded; // the encoder's output buffer, reused while outputs stay on this thread

function codeWhole(kind, input, level, maxOutputLength, stays) {
  if (zstd && kind === "zstd-encode") {
    const bound = Number(zstd.ZSTD_compressBound(input.length));
    if (stays && !(encoded?.length >= bound)) encoded = new Uint8Array(bound);
    const out = stays ? encoded : new Uint8Array(bound);
    const result = zstd.ZSTD_compressCCtx(zstd.cctx, out, out.length, input, input.length, level);
    return out.subarray(0, zstdResult(result, out.length));
  }
  if (zstd && maxOutputLength !== undefined) {
    const out = new Uint8Array(maxOutputLength);
    const result = zstd.ZSTD_decompressDCtx(zstd.dctx, out, out.length, input, input.length);
    return out.subarray(0, zstdResult(result, out.length));
  }
  const out = kind === "zstd-encode"
    ? zstdCompressSync(input, { params: { [constants.ZSTD_c_compressionLevel]: level } })
    : zstdDecompressSync(input, { maxOutputLength });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

function step(job, chunk, end) {
  const chunks = [];
  // Each chunk gets a buffer of its own: the buffers are transferred.
  codeXz(job, chunk, end, (bytes) => chunks.push(bytes.slice()));
  return chunks;
}

self.onmessage = ({ data }) => {
  if (data.init) {
    if (data.lzma) {
      const instance = new WebAssembly.Instance(data.lzma, {
        a: {
          a(size) { // emscripten_resize_heap
            try {
              memory.grow(Math.ceil(((size >>> 0) - memory.buffer.byteLength) / 65536));
              return 1;
            } catch {
              return 0;
            }
          },
        },
      });
      x = instance.exports;
      memory = x.b;
      x.c();
    }
    self.postMessage({ ready: true });
    return;
  }
  const { id, kind, chunk, end, level, maxOutputLength, hash, close, writeTo } = data;
  if (kind?.startsWith("zstd-")) {
    try {
      const out = codeWhole(kind, chunk, level, maxOutputLength, writeTo !== undefined);
      const hashed = hash === "both" ? [out, chunk] : hash === "output" ? [out] : [];
      const sha256 = hashed.map((b) => {
        const digest = digests("sha256");
        digest.update(b);
        return digest.digest();
      });
      if (writeTo === undefined) {
        self.postMessage({ id, chunks: [out], sha256, size: out.length }, [out.buffer]);
      } else {
        Deno.writeFileSync(writeTo, out, { createNew: true, mode: 0o644 });
        // The input's buffer goes back, for the caller to fill again.
        self.postMessage({ id, sha256, size: out.length, input: chunk.buffer }, [chunk.buffer]);
      }
    } catch (e) {
      self.postMessage({ id, error: String(e?.message ?? e) });
    }
    return;
  }
  let job = jobs.get(id);
  if (close) {
    if (job) endXz(job);
    jobs.delete(id);
    return;
  }
  try {
    if (!job) {
      job = { xz: openXz(kind, level) };
      jobs.set(id, job);
    }
    const chunks = step(job, chunk, end);
    if (end) {
      endXz(job);
      jobs.delete(id);
    }
    self.postMessage({ id, chunks }, chunks.map((c) => c.buffer));
  } catch (e) {
    if (job) endXz(job);
    jobs.delete(id);
    self.postMessage({ id, error: String(e?.message ?? e) });
  }
};
`;

interface Reply {
  id: number;
  chunks?: Uint8Array[];
  /** Bytes of output of a whole job. */
  size?: number;
  /** The input's buffer, given back after a job that wrote its output to a file. */
  input?: ArrayBuffer;
  /** sha256 of a whole job's output and input, as it asked. */
  sha256?: Uint8Array[];
  error?: string;
}

/** One worker thread and the replies it owes. */
class CodecWorker {
  readonly worker: Worker;
  readonly ready: Promise<boolean>;
  readonly #waiting = new Map<number, PromiseWithResolvers<Reply>>();
  jobs = 0;
  #failure: Error | undefined;

  constructor(url: string, lzma: WebAssembly.Module | undefined) {
    this.worker = new Worker(url, { type: "module" });
    const ready = Promise.withResolvers<boolean>();
    this.ready = ready.promise;
    const timer = setTimeout(() => ready.resolve(false), START_MS);
    this.worker.onmessage = ({ data }: MessageEvent<Reply & { ready?: boolean }>) => {
      if (data.ready) {
        clearTimeout(timer);
        ready.resolve(true);
        return;
      }
      const waiting = this.#waiting.get(data.id);
      this.#waiting.delete(data.id);
      waiting?.resolve(data);
    };
    this.worker.onerror = (event) => {
      event.preventDefault();
      clearTimeout(timer);
      ready.resolve(false);
      this.#failure = new Error(`Internal error: a codec worker failed: ${event.message}`);
      for (const waiting of this.#waiting.values()) waiting.reject(this.#failure);
      this.#waiting.clear();
    };
    this.worker.postMessage({ init: true, lzma });
  }

  /** Sends one message of job `id` (moving `transfer` along) and waits for the answer. */
  send(
    message: { id: number; [field: string]: unknown },
    transfer: Transferable[] = [],
  ): Promise<Reply> {
    if (this.#failure) return Promise.reject(this.#failure);
    const waiting = Promise.withResolvers<Reply>();
    this.#waiting.set(message.id, waiting);
    this.worker.postMessage(message, transfer);
    return waiting.promise;
  }

  /** Drops job `id`'s state (no answer comes). */
  drop(id: number): void {
    if (!this.#failure) this.worker.postMessage({ id, close: true });
  }
}

/** The workers of the moment: made for the first job, ended when the last open job ends. */
interface Pool {
  workers: CodecWorker[];
  ready: Promise<boolean>;
  open: number;
}

let pool: Pool | undefined;
/** Set when workers could not start: this process then codes on the caller's thread. */
let broken = false;
let workerUrl: string | undefined;
let lzmaModule: Promise<WebAssembly.Module | undefined> | undefined;
let nextId = 1;

/** liblzma's WebAssembly module (from `node-liblzma`), or undefined when it cannot be read. */
function loadLzma(): Promise<WebAssembly.Module | undefined> {
  lzmaModule ??= (async () => {
    try {
      const path = fileURLToPath(import.meta.resolve("node-liblzma/wasm/liblzma.wasm"));
      return await WebAssembly.compile(await Deno.readFile(path));
    } catch {
      return undefined;
    }
  })();
  return lzmaModule;
}

function workerCount(): number {
  return Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1));
}

async function openPool(): Promise<Pool | undefined> {
  if (broken) return undefined;
  if (pool === undefined) {
    const lzma = loadLzma();
    const made: Pool = { workers: [], ready: Promise.resolve(false), open: 0 };
    pool = made;
    made.ready = (async () => {
      const module = await lzma;
      workerUrl ??= URL.createObjectURL(
        new Blob([WORKER_SOURCE], { type: "application/javascript" }),
      );
      try {
        for (let i = 0; i < workerCount(); i++) {
          made.workers.push(new CodecWorker(workerUrl, module));
        }
      } catch {
        return false;
      }
      return (await Promise.all(made.workers.map((w) => w.ready))).every((ok) => ok);
    })();
  }
  const current = pool;
  current.open++;
  if (await current.ready) return current;
  broken = true;
  release(current);
  return undefined;
}

/** Holds of {@link holdCodecWorkers} not yet disposed. */
let holds = 0;

/**
 * Keeps the workers, once started, until disposed, even while no job is open: a run of many
 * short jobs (one-shot zstd NARs) then starts them once instead of once per job. With `start`,
 * they start now, on their own threads, while the caller prepares the jobs (narinfo queries).
 */
export function holdCodecWorkers(options: { start?: boolean } = {}): Disposable {
  holds++;
  if (options.start) void openPool().then((p) => p && release(p));
  let held = true;
  return {
    [Symbol.dispose]() {
      if (!held) return;
      held = false;
      if (--holds === 0 && pool !== undefined && pool.open === 0) end(pool);
    },
  };
}

/** One job fewer on `p`; its workers end with its last job unless they are held. */
function release(p: Pool): void {
  if (--p.open > 0 || (holds > 0 && !broken)) return;
  end(p);
}

function end(p: Pool): void {
  for (const w of p.workers) w.worker.terminate();
  if (pool === p) pool = undefined;
}

/**
 * Runs `kind` over `input` on a worker thread, streaming what it yields; when no worker can (none
 * starts, or liblzma's module cannot be read), yields what `fallback` makes of the same bytes
 * instead. Codec errors are thrown as plain Errors whose message is liblzma's.
 */
export async function* codeOnWorker(
  kind: CodecKind,
  input: AsyncIterable<Uint8Array>,
  options: CodecJobOptions,
  fallback: (input: AsyncIterable<Uint8Array>) => AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  const p = (await loadLzma()) === undefined ? undefined : await openPool();
  if (p === undefined) {
    yield* fallback(input);
    return;
  }
  const worker = leastBusy(p);
  const id = nextId++;
  let finished = false;
  const send = async (chunk: Uint8Array, end: boolean) => {
    // Copied, not transferred: the caller may still hold the chunk's buffer.
    const reply = await worker.send({ id, kind, chunk, end, level: options.level });
    if (reply.error !== undefined || end) finished = true;
    if (reply.error !== undefined) throw new Error(reply.error);
    return reply.chunks!;
  };
  try {
    for await (const chunk of input) yield* await send(chunk, false);
    yield* await send(new Uint8Array(0), true);
  } finally {
    worker.jobs--;
    if (!finished) worker.drop(id);
    release(p);
  }
}

/**
 * Runs `kind` over the whole of `input` on a worker thread (which takes `input`'s buffer: the
 * caller must not use it afterwards), hashing both sides there too when asked; when no worker
 * can, does the same with `fallback(input)` here. Codec errors are thrown as plain Errors whose
 * message is `node:zlib`'s.
 */
export async function codeWholeOnWorker(
  kind: WholeCodecKind,
  input: Uint8Array<ArrayBuffer>,
  options: WholeCodecJobOptions,
  fallback: (input: Uint8Array<ArrayBuffer>) => Uint8Array,
): Promise<WholeCodecResult> {
  const p = await openPool();
  if (p === undefined) {
    const output = fallback(input);
    const sha256 = options.hash && {
      output: hashBytes("sha256", output),
      input: options.hash === "both" ? hashBytes("sha256", input) : undefined,
    };
    if (options.writeTo === undefined) return { output, size: output.length, sha256 };
    Deno.writeFileSync(options.writeTo, output, { createNew: true, mode: 0o644 });
    return { size: output.length, sha256 };
  }
  const worker = leastBusy(p);
  try {
    const reply = await worker.send({ id: nextId++, kind, chunk: input, ...options }, [
      input.buffer,
    ]);
    if (reply.error !== undefined) throw new Error(reply.error);
    const [ofOutput, ofInput] = reply.sha256!.map((bytes) => new Hash("sha256", bytes));
    return {
      output: reply.chunks?.[0],
      size: reply.size!,
      input: reply.input,
      sha256: ofOutput && { output: ofOutput, input: ofInput },
    };
  } finally {
    worker.jobs--;
    release(p);
  }
}

/** The worker of `p` with the fewest jobs, counted as taking one more. */
function leastBusy(p: Pool): CodecWorker {
  const worker = p.workers.reduce((a, b) => b.jobs < a.jobs ? b : a);
  worker.jobs++;
  return worker;
}
