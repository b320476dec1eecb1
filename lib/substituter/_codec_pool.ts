/**
 * (De)compression on worker threads (`_codec_worker.ts`, which a compiled kiln embeds beside this
 * module), so that substituting or copying a closure keeps every core busy while the caller's
 * thread unpacks, hashes and writes. Workers are ended as soon as no job is open and no
 * `holdCodecWorkers` holds them (an idle worker would keep the process alive). Two kinds of job:
 * - xz streams (`codeOnWorker`): liblzma's WebAssembly module (compiled once here and posted to
 *   the workers) codes each input chunk the caller sends and answers with what it produced; a
 *   job's liblzma state stays in its worker.
 * - zstd in one piece (`codeWholeOnWorker`), for NARs small enough to hold in memory (most of
 *   them): libzstd's one-shot calls through FFI where `libzstd.so.1` loads (any Debian has it:
 *   dpkg needs it), else `node:zlib`'s (~1.3x slower). Deno runs `node:zlib`'s zstd on the calling
 *   thread, so without workers a copy compresses or decompresses on one core only.
 * If no worker can start (or, for xz, the module cannot be read), the caller's own codec runs.
 */

import { Hash, hashBytes } from "../hashing/mod.ts";
import type { CodecReply, CodecRequest, WholeCodecKind } from "./_codec_worker.ts";
import { loadLiblzma, type XzKind } from "./_xz.ts";
import { InternalError } from "../sys/mod.ts";

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

/** One worker thread and the replies it owes. */
class CodecWorker {
  readonly worker: Worker;
  readonly ready: Promise<boolean>;
  readonly #waiting = new Map<number, PromiseWithResolvers<CodecReply>>();
  jobs = 0;
  #failure: Error | undefined;

  constructor(lzma: WebAssembly.Module | undefined) {
    this.worker = new Worker(new URL("./_codec_worker.ts", import.meta.url), { type: "module" });
    const ready = Promise.withResolvers<boolean>();
    this.ready = ready.promise;
    const timer = setTimeout(() => ready.resolve(false), START_MS);
    this.worker.onmessage = ({ data }: MessageEvent<CodecReply>) => {
      if (data.ready) {
        clearTimeout(timer);
        ready.resolve(true);
        return;
      }
      const waiting = this.#waiting.get(data.id!);
      this.#waiting.delete(data.id!);
      waiting?.resolve(data);
    };
    this.worker.onerror = (event) => {
      event.preventDefault();
      clearTimeout(timer);
      ready.resolve(false);
      this.#failure = new InternalError(`a codec worker failed: ${event.message}`);
      for (const waiting of this.#waiting.values()) waiting.reject(this.#failure);
      this.#waiting.clear();
    };
    this.#post({ init: true, lzma });
  }

  /** Sends one message of job `id` (moving `transfer` along) and waits for the answer. */
  send(
    message: Exclude<CodecRequest, { init: true } | { close: true }>,
    transfer: Transferable[] = [],
  ): Promise<CodecReply> {
    if (this.#failure) return Promise.reject(this.#failure);
    const waiting = Promise.withResolvers<CodecReply>();
    this.#waiting.set(message.id, waiting);
    this.#post(message, transfer);
    return waiting.promise;
  }

  /** Drops job `id`'s state (no answer comes). */
  drop(id: number): void {
    if (!this.#failure) this.#post({ id, close: true });
  }

  #post(message: CodecRequest, transfer: Transferable[] = []): void {
    this.worker.postMessage(message, transfer);
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
let nextId = 1;

function workerCount(): number {
  return Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1));
}

async function openPool(): Promise<Pool | undefined> {
  if (broken) return undefined;
  if (pool === undefined) {
    const lzma = loadLiblzma();
    const made: Pool = { workers: [], ready: Promise.resolve(false), open: 0 };
    pool = made;
    made.ready = (async () => {
      const module = await lzma;
      try {
        for (let i = 0; i < workerCount(); i++) {
          made.workers.push(new CodecWorker(module));
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
  kind: XzKind,
  input: AsyncIterable<Uint8Array>,
  options: CodecJobOptions,
  fallback: (input: AsyncIterable<Uint8Array>) => AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  const p = (await loadLiblzma()) === undefined ? undefined : await openPool();
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
