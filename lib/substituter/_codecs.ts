/**
 * Web TransformStreams over the JavaScript codecs kiln uses: `node:zlib` (gzip, brotli, zstd
 * compression), `fzstd` (zstd decompression) and `unbzip2-stream` (bzip2 decompression).
 *
 * zstd is decoded with `fzstd`, not `node:zlib`: Deno 2.9's zstd decompressor throws a corrupt
 * frame's error outside the stream (an uncaught exception that ends the process) and passes a
 * truncated frame silently; `fzstd` reports both where the caller can catch them.
 *
 * Both packages are imported when a stream first needs them: most runs read neither format (a
 * zstd NAR small enough is decoded whole by libzstd), and loading them costs every kiln command
 * that may substitute ~20 ms of start-up.
 */

import type { Transform } from "node:stream";
import type { Decompress } from "fzstd";
// @ts-types="./_unbzip2_stream.d.ts"
import type unbzip2Stream from "unbzip2-stream";
import { InternalError } from "../sys/mod.ts";

/** Runs a `node:zlib` stream as a TransformStream; its errors become the stream's. */
export function zlibTransform(make: () => Transform): TransformStream<Uint8Array, Uint8Array> {
  let z: Transform;
  let settled: Promise<unknown>;
  return new TransformStream({
    start(controller) {
      z = make();
      z.on("data", (chunk: Uint8Array) => controller.enqueue(asUint8Array(chunk)));
      settled = new Promise((resolve, reject) => {
        z.once("end", resolve);
        z.once("error", reject);
      });
      settled.catch(() => {}); // observed by transform/flush; never an unhandled rejection
    },
    async transform(chunk) {
      const written = new Promise<void>((resolve, reject) => {
        z.write(chunk, (e) => e ? reject(e) : resolve());
      });
      await Promise.race([written, settled]);
    },
    async flush() {
      z.end();
      await settled;
    },
    cancel() {
      z.destroy();
    },
  });
}

/** A zstd decoder that errors on truncated input or bytes after the last frame. */
export function zstdDecoder(): TransformStream<Uint8Array, Uint8Array> {
  let decoder: Decompress;
  return new TransformStream({
    async start(controller) {
      const { Decompress } = await import("fzstd");
      decoder = new Decompress((chunk) => {
        if (chunk.byteLength > 0) controller.enqueue(chunk);
      });
    },
    transform(chunk) {
      decoder.push(chunk);
    },
    flush() {
      decoder.push(new Uint8Array(0), true);
    },
  });
}

/**
 * A bzip2 decoder. `unbzip2-stream` is a classic `through` stream that decodes synchronously
 * inside `write`/`end` and emits at once, so each call hands its output or error straight on.
 */
export function bzip2Decoder(): TransformStream<Uint8Array, Uint8Array> {
  let decoder: ReturnType<typeof unbzip2Stream>;
  let failure: unknown;
  let ended = false;
  return new TransformStream({
    async start(controller) {
      decoder = (await import("unbzip2-stream")).default();
      decoder.on("data", (chunk) => controller.enqueue(asUint8Array(chunk)));
      decoder.on("error", (e) => failure ??= bzip2Error(e));
      decoder.on("end", () => ended = true);
    },
    transform(chunk) {
      decoder.write(chunk);
      if (failure !== undefined) throw failure;
    },
    flush() {
      decoder.end();
      if (failure !== undefined) throw failure;
      if (!ended) throw new InternalError("unbzip2-stream did not end synchronously");
    },
  });
}

/** unbzip2-stream's own messages are not for users (one reads "I gave up a while ago ..."). */
function bzip2Error(e: unknown): Error {
  const message = e instanceof Error ? e.message : String(e);
  if (message === "No magic number found") return new Error("not bzip2 data");
  if (message === "input stream ended prematurely") return new Error("data is truncated");
  return new Error("data is corrupt or truncated");
}

/** A plain Uint8Array over a Buffer's bytes (no copy). */
function asUint8Array(chunk: Uint8Array): Uint8Array {
  return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}
