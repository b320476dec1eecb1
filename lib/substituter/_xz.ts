/**
 * xz as Web TransformStreams over liblzma compiled to WebAssembly (`node-liblzma/wasm`).
 *
 * The package's own `createUnxz` stops quietly on truncated input, so kiln drives `lzma_code`
 * itself: the decoder must reach LZMA_STREAM_END, or the stream errors. Concatenated streams
 * (as `xz` and `pixz` may write) and trailing stream padding are read, as the `xz` tool does.
 */

import type { LZMAModule, WasmLzmaStream } from "node-liblzma/wasm";

const LZMA_OK = 0;
const LZMA_STREAM_END = 1;
const LZMA_BUF_ERROR = 10;
const LZMA_RUN = 0;
const LZMA_FINISH = 3;
const LZMA_CHECK_CRC64 = 4;
const LZMA_CONCATENATED = 0x08;
/** Decoder memory limit: xz -9 needs 65 MiB, so this refuses only abuse. */
const MEMLIMIT = 1n << 30n;
const OUT_SIZE = 256 * 1024;

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

/** An xz encoder at `preset` (0-9), with a CRC64 check as Nix's. */
export function createXzEncoder(preset: number): TransformStream<Uint8Array, Uint8Array> {
  return lzmaTransform((module, strm) => module._lzma_easy_encoder(strm, preset, LZMA_CHECK_CRC64));
}

/** An xz decoder that errors on corrupt, truncated or unrecognised input. */
export function createXzDecoder(): TransformStream<Uint8Array, Uint8Array> {
  return lzmaTransform((module, strm) =>
    module._lzma_stream_decoder(strm, MEMLIMIT, LZMA_CONCATENATED)
  );
}

function lzmaTransform(
  init: (module: LZMAModule, strm: number) => number,
): TransformStream<Uint8Array, Uint8Array> {
  let lzma: typeof import("node-liblzma/wasm");
  let module: LZMAModule;
  let strm: WasmLzmaStream | undefined;
  let outPtr = 0;
  const release = () => {
    if (!strm) return;
    module._lzma_end(strm.ptr);
    strm.free();
    module._free(outPtr);
    strm = undefined;
  };
  const run = (
    chunk: Uint8Array,
    action: number,
    controller: TransformStreamDefaultController<Uint8Array>,
  ) => {
    const s = strm!;
    const inPtr = chunk.byteLength > 0 ? lzma.copyToWasm(module, chunk) : 0;
    try {
      s.setInput(inPtr, chunk.byteLength);
      while (true) {
        s.setOutput(outPtr, OUT_SIZE);
        const ret = module._lzma_code(s.ptr, action);
        const produced = OUT_SIZE - s.availOut;
        if (produced > 0) controller.enqueue(lzma.copyFromWasm(module, outPtr, produced));
        if (ret === LZMA_STREAM_END) return;
        if (ret === LZMA_BUF_ERROR && action === LZMA_RUN) return;
        if (ret !== LZMA_OK) throw new Error(MESSAGES[ret] ?? `liblzma error ${ret}`);
        if (action === LZMA_RUN && s.availIn === 0 && s.availOut > 0) return;
      }
    } finally {
      if (inPtr) module._free(inPtr);
    }
  };
  return new TransformStream({
    async start() {
      lzma = await import("node-liblzma/wasm"); // loaded when first needed, as _codecs.ts's
      module = await lzma.initModule();
      strm = new lzma.WasmLzmaStream(module);
      outPtr = module._malloc(OUT_SIZE);
      const ret = init(module, strm.ptr);
      if (ret !== LZMA_OK) {
        release();
        throw new Error(`Internal error: liblzma initialisation failed (${ret})`);
      }
    },
    transform(chunk, controller) {
      try {
        run(chunk, LZMA_RUN, controller);
      } catch (e) {
        release();
        throw e;
      }
    },
    flush(controller) {
      try {
        run(new Uint8Array(0), LZMA_FINISH, controller);
      } finally {
        release();
      }
    },
    cancel: release,
  });
}
