/**
 * A codec worker of `_codec_pool.ts`: xz streams through liblzma's WebAssembly module (compiled
 * by the pool and posted here), each job's state kept here between its chunks; zstd in one piece
 * through libzstd's one-shot calls (FFI) where `libzstd.so.1` loads (any Debian has it: dpkg
 * needs it), else `node:zlib`'s (~1.3x slower), with the sha256 of either side when asked.
 */

import { constants, zstdCompressSync, zstdDecompressSync } from "node:zlib";
import { hashBytes } from "../hashing/mod.ts";
import { instantiateLiblzma, type Liblzma, XzCoder, type XzKind } from "./_xz.ts";
import { InternalError } from "../sys/mod.ts";

/** What a worker does to a whole input at once. */
export type WholeCodecKind = "zstd-decode" | "zstd-encode";

/** One chunk of xz job `id`'s input, the last one with `end`. */
export interface XzChunk {
  id: number;
  kind: XzKind;
  chunk: Uint8Array;
  end: boolean;
  /** Encoding: the preset. */
  level?: number;
}

/** A whole zstd job (see `WholeCodecJobOptions`). */
export interface WholeJob {
  id: number;
  kind: WholeCodecKind;
  chunk: Uint8Array<ArrayBuffer>;
  /** Encoding: the level (0, libzstd's default, when absent). */
  level?: number;
  maxOutputLength?: number;
  hash?: "output" | "both";
  writeTo?: string;
}

/**
 * A message to a codec worker: first `init` (with liblzma's module, when the pool could read it),
 * then jobs' messages; `close` drops xz job `id` (no answer comes).
 */
export type CodecRequest =
  | { init: true; lzma?: WebAssembly.Module }
  | { id: number; close: true }
  | XzChunk
  | WholeJob;

/** A codec worker's answer: to `init`, `ready`; to a job's message, its output or its error. */
export interface CodecReply {
  ready?: boolean;
  id?: number;
  chunks?: Uint8Array[];
  /** Bytes of output of a whole job. */
  size?: number;
  /** The input's buffer, given back after a whole job that wrote its output to a file. */
  input?: ArrayBuffer;
  /** sha256 of a whole job's output and input, as it asked. */
  sha256?: Uint8Array[];
  error?: string;
}

/** This thread's global scope as a worker's (the project is checked with the window's types). */
const scope = self as unknown as {
  onmessage: (event: MessageEvent<CodecRequest>) => void;
  postMessage(reply: CodecReply, transfer?: Transferable[]): void;
};

let liblzma: Liblzma | undefined;
const jobs = new Map<number, XzCoder>();

scope.onmessage = ({ data }) => {
  if ("init" in data) {
    if (data.lzma) liblzma = instantiateLiblzma(data.lzma);
    scope.postMessage({ ready: true });
  } else if ("close" in data) {
    close(data.id);
  } else if (isWholeJob(data)) {
    codeWholeJob(data);
  } else {
    codeXzChunk(data);
  }
};

function codeXzChunk({ id, kind, chunk, end, level }: XzChunk): void {
  let coder = jobs.get(id);
  try {
    if (coder === undefined) {
      if (liblzma === undefined) throw new InternalError("liblzma is not loaded here");
      coder = new XzCoder(liblzma, kind, level);
      jobs.set(id, coder);
    }
    const chunks: Uint8Array<ArrayBuffer>[] = [];
    // Each chunk gets a buffer of its own: the buffers are transferred.
    coder.code(chunk, end, (bytes) => chunks.push(bytes.slice()));
    if (end) close(id);
    scope.postMessage({ id, chunks }, chunks.map((c) => c.buffer));
  } catch (e) {
    close(id);
    scope.postMessage({ id, error: messageOf(e) });
  }
}

function isWholeJob(job: XzChunk | WholeJob): job is WholeJob {
  return job.kind === "zstd-decode" || job.kind === "zstd-encode";
}

/** Ends xz job `id`, freeing its state. */
function close(id: number): void {
  jobs.get(id)?.[Symbol.dispose]();
  jobs.delete(id);
}

function codeWholeJob(job: WholeJob): void {
  const { id, kind, chunk, writeTo } = job;
  try {
    const out = codeWhole(kind, chunk, job.level, job.maxOutputLength, writeTo !== undefined);
    const hashed = job.hash === "both" ? [out, chunk] : job.hash === "output" ? [out] : [];
    const sha256 = hashed.map((bytes) => hashBytes("sha256", bytes).bytes);
    if (writeTo === undefined) {
      scope.postMessage({ id, chunks: [out], sha256, size: out.length }, [out.buffer]);
    } else {
      Deno.writeFileSync(writeTo, out, { createNew: true, mode: 0o644 });
      // The input's buffer goes back, for the caller to fill again.
      scope.postMessage({ id, sha256, size: out.length, input: chunk.buffer }, [chunk.buffer]);
    }
  } catch (e) {
    scope.postMessage({ id, error: messageOf(e) });
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const ZSTD_SYMBOLS = {
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
} as const;

/**
 * libzstd itself where it can be loaded (it is on every Debian, as dpkg needs it): ~1.3x faster
 * than node:zlib's zstd here, and a decoder writes straight into a buffer of the size it may fill.
 */
const zstd = (() => {
  try {
    const { symbols } = Deno.dlopen("libzstd.so.1", ZSTD_SYMBOLS);
    return { ...symbols, cctx: symbols.ZSTD_createCCtx(), dctx: symbols.ZSTD_createDCtx() };
  } catch {
    return undefined;
  }
})();

/** zstd's error codes that a damaged or foreign input gives, in words a user can act on. */
const ZSTD_ERRORS: Record<number, string> = {
  10: "unknown frame descriptor (not zstd data, or bytes after the last frame)",
  20: "data is corrupt",
  22: "data is corrupt (checksum mismatch)",
  72: "data is truncated",
};

/** A size_t result of libzstd as a number; an error code it holds is thrown. */
function zstdResult(result: number | bigint, bound: number): number {
  const value = BigInt(result);
  if (value <= 0xffffffffffffff00n) return Number(value);
  const code = Number((1n << 64n) - value);
  if (code === 70) throw new Error(`the output is larger than ${bound} bytes`);
  const name = zstd!.ZSTD_getErrorName(value);
  throw new Error(ZSTD_ERRORS[code] ?? (name ? Deno.UnsafePointerView.getCString(name) : code));
}

/** The encoder's output buffer, reused while outputs stay on this thread. */
let encoded: Uint8Array<ArrayBuffer> | undefined;

function codeWhole(
  kind: WholeCodecKind,
  input: Uint8Array,
  level: number | undefined,
  maxOutputLength: number | undefined,
  stays: boolean,
): Uint8Array<ArrayBuffer> {
  if (zstd && kind === "zstd-encode") {
    const bound = Number(zstd.ZSTD_compressBound(BigInt(input.length)));
    if (stays && !(encoded !== undefined && encoded.length >= bound)) {
      encoded = new Uint8Array(bound);
    }
    const out = stays ? encoded! : new Uint8Array(bound);
    const result = zstd.ZSTD_compressCCtx(
      zstd.cctx,
      out,
      BigInt(out.length),
      input,
      BigInt(input.length),
      level ?? 0,
    );
    return out.subarray(0, zstdResult(result, out.length));
  }
  if (zstd && maxOutputLength !== undefined) {
    const out = new Uint8Array(maxOutputLength);
    const result = zstd.ZSTD_decompressDCtx(
      zstd.dctx,
      out,
      BigInt(out.length),
      input,
      BigInt(input.length),
    );
    return out.subarray(0, zstdResult(result, out.length));
  }
  const out = kind === "zstd-encode"
    ? zstdCompressSync(input, { params: { [constants.ZSTD_c_compressionLevel]: level ?? 0 } })
    : zstdDecompressSync(input, { maxOutputLength });
  return new Uint8Array(out.buffer as ArrayBuffer, out.byteOffset, out.byteLength);
}
