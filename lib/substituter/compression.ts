/**
 * Streaming (de)compression of NARs in a binary cache, by the method named in a narinfo.
 *
 * gzip and brotli come from `node:zlib`, and so does zstd compression; zstd is read with the
 * pure-JS `fzstd` (see _codecs.ts). xz is real liblzma compiled to WebAssembly (`node-liblzma`'s
 * `/wasm` entry point: no native addon to build or load). bzip2, which only
 * old caches use, is read with the pure-JS `unbzip2-stream`.
 *
 * Decoders report what their format lets them see (truncation everywhere but brotli; corruption
 * through xz's, bzip2's and gzip's checksums), so callers must still check the NAR's hash.
 */

import { concatBytes, type Hash } from "../hashing/mod.ts";
import { bzip2Decoder, zlibTransform, zstdDecoder } from "./_codecs.ts";
import { createXzDecoder, createXzEncoder } from "./_xz.ts";
import { codeOnWorker, codeWholeOnWorker } from "./_codec_pool.ts";
import { unreachable } from "../sys/mod.ts";

export { holdCodecWorkers } from "./_codec_pool.ts";

/** Methods kiln reads: Nix's names as they appear in a narinfo's `Compression:` field. */
export type CompressionMethod = "none" | "xz" | "bzip2" | "zstd" | "gzip" | "br";
/** Methods kiln writes (every one it reads but bzip2). */
export type WritableCompressionMethod = Exclude<CompressionMethod, "bzip2">;

export const COMPRESSION_METHODS: readonly CompressionMethod[] = [
  "none",
  "xz",
  "bzip2",
  "zstd",
  "gzip",
  "br",
];

/** What kiln writes unless told otherwise: fast to write and to read. */
export const DEFAULT_COMPRESSION: WritableCompressionMethod = "zstd";

/** Parses a method name; Nix's other methods (lzip, lz4, ...) are refused with a clear error. */
export function parseCompressionMethod(name: string): CompressionMethod {
  if ((COMPRESSION_METHODS as readonly string[]).includes(name)) return name as CompressionMethod;
  throw new SyntaxError(
    `Unsupported compression method '${name}' (expected ${COMPRESSION_METHODS.join(", ")})`,
  );
}

/** Parses a method kiln can write; `bzip2` and unknown names are errors. */
export function parseWritableCompressionMethod(name: string): WritableCompressionMethod {
  const method = parseCompressionMethod(name);
  if (method === "bzip2") throw new SyntaxError("kiln reads bzip2 but cannot write it");
  return method;
}

/** The file name extension Nix gives a NAR compressed with `method` (`.nar` + this). */
export function compressionExtension(method: CompressionMethod): string {
  switch (method) {
    case "xz":
      return ".xz";
    case "bzip2":
      return ".bz2";
    case "zstd":
      return ".zst";
    case "br":
      return ".br";
    case "gzip":
    case "none":
      return "";
    default:
      return unreachable(method);
  }
}

/** Options of {@link compress}. */
export interface CompressOptions {
  /**
   * Method-specific level: xz preset 0-9 (default 1: near `xz -1` speed, which Nix reads like
   * any other), zstd 1-19 (default 3), gzip 0-9 (default 6), br 0-11 (default 11).
   */
  level?: number;
}

/** Default xz preset: about 8x faster than Nix's 6 for ~15% bigger files. */
const DEFAULT_XZ_PRESET = 1;
const DEFAULT_ZSTD_LEVEL = 3;

const LEVEL_RANGES: Record<Exclude<WritableCompressionMethod, "none">, [number, number]> = {
  xz: [0, 9],
  zstd: [1, 19],
  gzip: [0, 9],
  br: [0, 11],
};

/** Compresses `input` with `method`, streaming. */
export function compress(
  method: WritableCompressionMethod,
  input: ReadableStream<Uint8Array>,
  options: CompressOptions = {},
): ReadableStream<Uint8Array> {
  if (method === "none") return input;
  const level = checkLevel(method, options.level);
  if (method === "zstd") {
    return ReadableStream.from(compressZstd(input, level ?? DEFAULT_ZSTD_LEVEL));
  }
  if (method !== "xz") return input.pipeThrough(encoder(method, level));
  const preset = level ?? DEFAULT_XZ_PRESET;
  return ReadableStream.from(
    codeOnWorker(
      "xz-encode",
      input,
      { level: preset },
      (rest) => throughCodec(rest, encoder(method, level)),
    ),
  );
}

/** NARs up to this size are zstd-compressed or -decoded in one piece on a worker thread. */
export const WHOLE_ZSTD_BYTES = 8 << 20;

/** A NAR compressed in one piece, with the sha256 of the NAR and of the compressed bytes. */
export interface CompressedNar {
  /** Absent when written to `writeTo`. */
  compressed?: Uint8Array;
  /** Bytes compressed. */
  size: number;
  narHash: Hash;
  fileHash: Hash;
  /** `nar`'s buffer, back from the worker after writing `writeTo`: free to fill again. */
  buffer?: ArrayBuffer;
}

/**
 * zstd-compresses a whole NAR of up to {@link WHOLE_ZSTD_BYTES} on a worker thread (which takes
 * `nar`'s buffer), hashing the NAR and the result there as well, and with `writeTo` writing the
 * result there into a new file: a copy into a cache then leaves its own thread nothing to do but
 * read the store.
 */
export async function compressNarWhole(
  nar: Uint8Array<ArrayBuffer>,
  options: CompressOptions & { writeTo?: string } = {},
): Promise<CompressedNar> {
  const level = checkLevel("zstd", options.level) ?? DEFAULT_ZSTD_LEVEL;
  const { output, size, sha256, input } = await codeWholeOnWorker(
    "zstd-encode",
    nar,
    { level, hash: "both", writeTo: options.writeTo },
    (bytes) => zlib().zstdCompressSync(bytes, { params: zstdParams(level) }),
  );
  return {
    compressed: output,
    size,
    narHash: sha256!.input!,
    fileHash: sha256!.output,
    buffer: input,
  };
}

/** A NAR decoded in one piece, with its sha256. */
export interface DecompressedNar {
  nar: Uint8Array;
  narHash: Hash;
}

/**
 * Decodes a zstd NAR of up to {@link WHOLE_ZSTD_BYTES} on a worker thread (which takes `packed`'s
 * buffer) and hashes it there: with libzstd, about 3x faster than the streaming pure-JS decoder
 * of `decompress`. The output may not pass `narSize` (the narinfo's NarSize), so a decompression
 * bomb stops there; a shorter one is returned for the caller's size check to reject. Errors are
 * SyntaxErrors `Cannot decompress zstd data: ...`.
 */
export async function decompressNarWhole(
  packed: Uint8Array<ArrayBuffer>,
  narSize: number,
): Promise<DecompressedNar> {
  try {
    const { output, sha256 } = await codeWholeOnWorker(
      "zstd-decode",
      packed,
      { maxOutputLength: narSize, hash: "output" },
      (input) => zlib().zstdDecompressSync(input, { maxOutputLength: narSize }),
    );
    const nar = new Uint8Array(output!.buffer, output!.byteOffset, output!.byteLength);
    return { nar, narHash: sha256!.output };
  } catch (e) {
    const why = /larger than/.test((e as Error).message)
      ? `the NAR is larger than its NarSize ${narSize}`
      : (e as Error).message.replace(/^Zstd decompress error: /, "");
    throw new SyntaxError(`Cannot decompress zstd data: ${why}`);
  }
}

/** `level` for `method`, checked against its range; undefined stays undefined. */
function checkLevel(
  method: Exclude<WritableCompressionMethod, "none">,
  level: number | undefined,
): number | undefined {
  if (level === undefined) return undefined;
  const [min, max] = LEVEL_RANGES[method];
  if (!Number.isInteger(level) || level < min || level > max) {
    throw new RangeError(
      `Compression level ${level} is out of range for ${method} (${min}-${max})`,
    );
  }
  return level;
}

/**
 * zstd: an input that ends within {@link WHOLE_ZSTD_BYTES} (most NARs) is compressed in one call
 * on a worker thread, so that several NARs compress at once; a larger one streams through
 * `node:zlib` here. Both give a single zstd frame.
 */
async function* compressZstd(
  input: ReadableStream<Uint8Array>,
  level: number,
): AsyncGenerator<Uint8Array> {
  const reader = input.getReader();
  const head: Uint8Array[] = [];
  let size = 0;
  let ended = false;
  try {
    while (size <= WHOLE_ZSTD_BYTES) {
      const { value, done } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
      head.push(value);
      size += value.length;
    }
  } finally {
    reader.releaseLock();
  }
  if (ended) {
    const whole = concatBytes(head, size);
    yield (await codeWholeOnWorker(
      "zstd-encode",
      whole,
      { level },
      (bytes) => zlib().zstdCompressSync(bytes, { params: zstdParams(level) }),
    )).output!;
    return;
  }
  const rest = ReadableStream.from((async function* () {
    yield* head;
    yield* input;
  })());
  yield* rest.pipeThrough(encoder("zstd", level));
}

function zstdParams(level: number): Record<number, number> {
  return { [zlib().constants.ZSTD_c_compressionLevel]: level };
}

function throughCodec(
  input: AsyncIterable<Uint8Array>,
  codec: TransformStream<Uint8Array, Uint8Array>,
): ReadableStream<Uint8Array> {
  return ReadableStream.from(input).pipeThrough(codec);
}

function encoder(
  method: Exclude<WritableCompressionMethod, "none">,
  level: number | undefined,
): TransformStream<Uint8Array, Uint8Array> {
  switch (method) {
    case "xz":
      return createXzEncoder(level ?? DEFAULT_XZ_PRESET);
    case "zstd":
      return zlibTransform(() =>
        zlib().createZstdCompress({ params: zstdParams(level ?? DEFAULT_ZSTD_LEVEL) })
      );
    case "gzip":
      return zlibTransform(() => zlib().createGzip({ level: level ?? 6 }));
    case "br":
      return zlibTransform(() =>
        zlib().createBrotliCompress({
          params: { [zlib().constants.BROTLI_PARAM_QUALITY]: level ?? 11 },
        })
      );
    default:
      return unreachable(method);
  }
}

/**
 * Decompresses `input`, streaming (xz on worker threads). Input the decoder rejects, or no input
 * at all, makes the stream error with a SyntaxError `Cannot decompress <method> data: ...`.
 */
export function decompress(
  method: CompressionMethod,
  input: ReadableStream<Uint8Array>,
): ReadableStream<Uint8Array> {
  if (method === "none") return input;
  const checked = input.pipeThrough(nonEmpty(method));
  const decoded = method === "xz"
    ? codeOnWorker("xz-decode", checked, {}, (rest) => throughCodec(rest, decoder(method)))
    : checked.pipeThrough(decoder(method));
  return ReadableStream.from(explainErrors(method, decoded));
}

function decoder(
  method: Exclude<CompressionMethod, "none">,
): TransformStream<Uint8Array, Uint8Array> {
  switch (method) {
    case "xz":
      return createXzDecoder();
    case "bzip2":
      return bzip2Decoder();
    case "zstd":
      return zstdDecoder();
    case "gzip":
      return zlibTransform(() => zlib().createGunzip());
    case "br":
      return zlibTransform(() => zlib().createBrotliDecompress());
    default:
      return unreachable(method);
  }
}

/** Passes chunks through, but fails at the end if there were no bytes at all. */
function nonEmpty(method: CompressionMethod): TransformStream<Uint8Array, Uint8Array> {
  let seen = false;
  return new TransformStream({
    transform(chunk, controller) {
      if (chunk.byteLength > 0) seen = true;
      controller.enqueue(chunk);
    },
    flush() {
      if (!seen) throw new SyntaxError(`Cannot decompress ${method} data: the input is empty`);
    },
  });
}

async function* explainErrors(
  method: CompressionMethod,
  chunks: AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  try {
    yield* chunks;
  } catch (e) {
    if (e instanceof SyntaxError && e.message.startsWith("Cannot decompress")) throw e;
    const why = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new SyntaxError(`Cannot decompress ${method} data: ${why}`);
  }
}

/** `node:zlib`, loaded when first used: most runs need none of it (it costs ~20 ms to load). */
function zlib(): typeof import("node:zlib") {
  // deno-lint-ignore no-process-global -- the synchronous way to load a built-in module lazily
  return process.getBuiltinModule("node:zlib");
}
