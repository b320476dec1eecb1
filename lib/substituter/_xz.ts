/**
 * xz over liblzma compiled to WebAssembly (`node-liblzma`'s `liblzma.wasm`, without its JS glue):
 * one coding loop, {@link XzCoder}, for the caller's thread (Web TransformStreams) and for the
 * codec workers (`_codec_worker.ts`), each thread with an instance of its own.
 *
 * kiln drives `lzma_code` itself because the package's own `createUnxz` stops quietly on
 * truncated input: the decoder must reach LZMA_STREAM_END, or the stream errors. Concatenated
 * streams (as `xz` and `pixz` may write) and trailing stream padding are read, as the `xz` tool
 * does.
 */

import { fileURLToPath } from "node:url";
import { InternalError } from "../sys/mod.ts";

/** What an {@link XzCoder} does. */
export type XzKind = "xz-decode" | "xz-encode";

const LZMA_OK = 0;
const LZMA_STREAM_END = 1;
const LZMA_BUF_ERROR = 10;
const LZMA_RUN = 0;
const LZMA_FINISH = 3;
const LZMA_CHECK_CRC64 = 4;
const LZMA_CONCATENATED = 0x08;
/** Decoder memory limit: xz -9 needs 65 MiB, so this refuses only abuse. */
const MEMLIMIT = 1n << 30n;
const OUT_SIZE = 1 << 20;
/** lzma_stream on wasm32: next_in at 0, avail_in 4, next_out 16, avail_out 20. */
const STREAM_SIZE = 96;

const MESSAGES: Record<number, string> = {
  2: "no integrity check",
  3: "unsupported integrity check",
  5: "out of memory",
  6: "memory limit reached",
  7: "file format not recognized",
  8: "unsupported options",
  9: "data is corrupt",
  10: "data is truncated",
  11: "internal liblzma error",
};

/**
 * An instance of liblzma (a memory of its own, for the coders of one thread): the exports kiln
 * calls, under the names the module's build gave them.
 */
export interface Liblzma {
  /** The linear memory. */
  b: WebAssembly.Memory;
  /** __wasm_call_ctors */
  c(): void;
  /** lzma_code(strm, action) */
  f(strm: number, action: number): number;
  /** lzma_end(strm) */
  g(strm: number): void;
  /** lzma_easy_encoder(strm, preset, check) */
  m(strm: number, preset: number, check: number): number;
  /** lzma_stream_decoder(strm, memlimit, flags) */
  r(strm: number, memlimit: bigint, flags: number): number;
  /** malloc(size) */
  s(size: number): number;
  /** free(ptr) */
  t(ptr: number): void;
}

let compiled: Promise<WebAssembly.Module | undefined> | undefined;

/** liblzma's WebAssembly module, compiled once per process; undefined when it cannot be read. */
export function loadLiblzma(): Promise<WebAssembly.Module | undefined> {
  compiled ??= (async () => {
    try {
      const path = fileURLToPath(import.meta.resolve("node-liblzma/wasm/liblzma.wasm"));
      return await WebAssembly.compile(await Deno.readFile(path));
    } catch {
      return undefined;
    }
  })();
  return compiled;
}

/** A new instance of liblzma's `module`. */
export function instantiateLiblzma(module: WebAssembly.Module): Liblzma {
  const instance: WebAssembly.Instance = new WebAssembly.Instance(module, {
    a: {
      a(size: number) { // emscripten_resize_heap
        const memory = (instance.exports as unknown as Liblzma).b;
        try {
          memory.grow(Math.ceil(((size >>> 0) - memory.buffer.byteLength) / 65536));
          return 1;
        } catch {
          return 0;
        }
      },
    },
  });
  const lib = instance.exports as unknown as Liblzma;
  lib.c();
  return lib;
}

/**
 * One xz stream being encoded (at `preset` 0-9, with a CRC64 check as Nix's) or decoded (failing
 * on corrupt, truncated or unrecognised input). Dispose of it to free its state.
 */
export class XzCoder implements Disposable {
  readonly #lib: Liblzma;
  #strm = 0;
  #out = 0;

  constructor(lib: Liblzma, kind: XzKind, preset = 0) {
    this.#lib = lib;
    this.#strm = lib.s(STREAM_SIZE);
    new Uint8Array(lib.b.buffer, this.#strm, STREAM_SIZE).fill(0);
    const ret = kind === "xz-encode"
      ? lib.m(this.#strm, preset, LZMA_CHECK_CRC64)
      : lib.r(this.#strm, MEMLIMIT, LZMA_CONCATENATED);
    if (ret !== LZMA_OK) {
      lib.t(this.#strm);
      this.#strm = 0;
      throw new Error(MESSAGES[ret] ?? `liblzma error ${ret}`);
    }
    this.#out = lib.s(OUT_SIZE);
  }

  /**
   * Codes `chunk`, the last one with `end`, handing each piece of output to `emit` (a view of
   * liblzma's memory, valid only during the call). Throws liblzma's error in words.
   */
  code(chunk: Uint8Array, end: boolean, emit: (bytes: Uint8Array) => void): void {
    const lib = this.#lib;
    const strm = this.#strm;
    if (strm === 0) throw new InternalError("xz stream used after it was closed");
    const inPtr = chunk.length > 0 ? lib.s(chunk.length) : 0;
    const words = () => new Uint32Array(lib.b.buffer, strm, STREAM_SIZE / 4); // memory may grow
    try {
      if (inPtr) new Uint8Array(lib.b.buffer).set(chunk, inPtr);
      words().set([inPtr, chunk.length], 0);
      const action = end ? LZMA_FINISH : LZMA_RUN;
      for (;;) {
        words().set([this.#out, OUT_SIZE], 4);
        const ret = lib.f(strm, action);
        const produced = OUT_SIZE - words()[5];
        if (produced > 0) emit(new Uint8Array(lib.b.buffer, this.#out, produced));
        if (ret === LZMA_STREAM_END) return;
        if (ret === LZMA_BUF_ERROR && action === LZMA_RUN) return; // it needs more input
        if (ret !== LZMA_OK) throw new Error(MESSAGES[ret] ?? `liblzma error ${ret}`);
        if (action === LZMA_RUN && words()[1] === 0 && words()[5] > 0) return;
      }
    } finally {
      if (inPtr) lib.t(inPtr);
    }
  }

  [Symbol.dispose](): void {
    if (this.#strm === 0) return;
    this.#lib.g(this.#strm);
    this.#lib.t(this.#strm);
    this.#lib.t(this.#out);
    this.#strm = 0;
  }
}

/** This thread's instance of liblzma, made for its first stream. */
let own: Promise<Liblzma> | undefined;

/** An xz encoder at `preset` (0-9), with a CRC64 check as Nix's. */
export function createXzEncoder(preset: number): TransformStream<Uint8Array, Uint8Array> {
  return xzTransform("xz-encode", preset);
}

/** An xz decoder that errors on corrupt, truncated or unrecognised input. */
export function createXzDecoder(): TransformStream<Uint8Array, Uint8Array> {
  return xzTransform("xz-decode", 0);
}

function xzTransform(kind: XzKind, preset: number): TransformStream<Uint8Array, Uint8Array> {
  let coder: XzCoder | undefined;
  const run = (
    chunk: Uint8Array,
    end: boolean,
    controller: TransformStreamDefaultController<Uint8Array>,
  ) => coder!.code(chunk, end, (bytes) => controller.enqueue(bytes.slice()));
  return new TransformStream({
    async start() {
      own ??= loadLiblzma().then((module) => {
        if (module === undefined) {
          throw new InternalError("liblzma's WebAssembly module cannot be read");
        }
        return instantiateLiblzma(module);
      });
      coder = new XzCoder(await own, kind, preset);
    },
    transform(chunk, controller) {
      try {
        run(chunk, false, controller);
      } catch (e) {
        coder?.[Symbol.dispose]();
        throw e;
      }
    },
    flush(controller) {
      try {
        run(new Uint8Array(0), true, controller);
      } finally {
        coder?.[Symbol.dispose]();
      }
    },
    cancel: () => coder?.[Symbol.dispose](),
  });
}
