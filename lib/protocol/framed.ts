/**
 * Framed data (`FramedSink` / `FramedSource`): a byte stream sent as chunks, each a u64 LE length
 * and that many bytes without padding, ended by a zero-length chunk. The worker protocol sends
 * NARs this way for AddToStore (>= 1.25), AddToStoreNar (>= 1.23) and AddMultipleToStore.
 */

import { DEFAULT_WIRE_LIMITS, WireFormatError, WireWriter } from "./wire.ts";
import { InternalError } from "../sys/mod.ts";

/** Frames `data` as chunks of at most `chunkSize` bytes, then the empty end frame. */
export function encodeFramed(data: Uint8Array, chunkSize = 32 * 1024): Uint8Array<ArrayBuffer> {
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
    throw new InternalError(`frame chunk size ${chunkSize}`);
  }
  const writer = new WireWriter();
  for (let at = 0; at < data.length; at += chunkSize) {
    const chunk = data.subarray(at, at + chunkSize);
    writer.writeInt(chunk.length).writeRaw(chunk);
  }
  return writer.writeInt(0).finish();
}

/** What {@link FramedDecoder.push} found in the bytes it was given. */
export interface FramedChunk {
  /** Payload bytes decoded from this input (possibly empty). */
  data: Uint8Array[];
  /** Whether the end frame has been read. */
  done: boolean;
  /** Bytes of the input after the end frame: the next message's, not the frames'. */
  rest: Uint8Array;
}

/**
 * Incremental decoder: feed it bytes as they arrive, in any split; it returns the payload
 * decoded so far and, once the end frame is seen, the bytes that follow it.
 */
export class FramedDecoder {
  #header = new Uint8Array(8);
  #headerFill = 0;
  #frameLeft = 0;
  #consumed = 0;
  #done = false;
  readonly #maxFrame: number;

  /** `maxFrame` bounds one frame's declared length (default 64 MiB). */
  constructor(maxFrame = DEFAULT_WIRE_LIMITS.maxStringLength) {
    this.#maxFrame = maxFrame;
  }

  /** Whether the end frame has been read. */
  get done(): boolean {
    return this.#done;
  }

  push(input: Uint8Array): FramedChunk {
    if (this.#done) throw new InternalError("framed data pushed after its end");
    const data: Uint8Array[] = [];
    let at = 0;
    while (at < input.length && !this.#done) {
      if (this.#frameLeft > 0) {
        const take = Math.min(this.#frameLeft, input.length - at);
        data.push(input.subarray(at, at + take));
        at += take;
        this.#frameLeft -= take;
        continue;
      }
      const take = Math.min(8 - this.#headerFill, input.length - at);
      this.#header.set(input.subarray(at, at + take), this.#headerFill);
      this.#headerFill += take;
      at += take;
      if (this.#headerFill < 8) break;
      this.#headerFill = 0;
      const length = new DataView(this.#header.buffer).getBigUint64(0, true);
      if (length > BigInt(this.#maxFrame)) {
        throw new WireFormatError(
          `Frame length ${length} exceeds the limit of ${this.#maxFrame}`,
          this.#consumed + at - 8,
        );
      }
      if (length === 0n) this.#done = true;
      this.#frameLeft = Number(length);
    }
    this.#consumed += at;
    return { data, done: this.#done, rest: input.subarray(at) };
  }

  /** Throws unless the end frame was read (call when the input has ended). */
  finish(): void {
    if (!this.#done) {
      throw new WireFormatError("Truncated input: framed data has no end frame", this.#consumed);
    }
  }
}
