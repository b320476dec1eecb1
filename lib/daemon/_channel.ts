/**
 * Both directions of one worker-protocol connection: requests parsed from a byte stream with the
 * pure codecs of lib/protocol (a parse that runs out of bytes is retried once more have come),
 * framed data as it arrives, and replies and stderr messages written in the order they are sent.
 */

import {
  FramedDecoder,
  type StderrMessage,
  WireReader,
  WireTruncatedError,
  WireWriter,
  writeStderrMessage,
} from "../protocol/mod.ts";
import { concatBytes } from "../hashing/mod.ts";

/** Reads requests off a connection's byte stream. */
export class Incoming {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buffer: Uint8Array = new Uint8Array(0);
  #ended = false;
  #pulling: Promise<void> | undefined;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** Whether the client has hung up with nothing left unread. */
  async atEnd(): Promise<boolean> {
    while (this.#buffer.length === 0 && !this.#ended) await this.#pull();
    return this.#buffer.length === 0;
  }

  /** Parses the next value, reading more bytes until `parse` has enough of them. */
  async read<T>(parse: (reader: WireReader) => T): Promise<T> {
    while (true) {
      const reader = new WireReader(this.#buffer);
      try {
        const value = parse(reader);
        this.#buffer = this.#buffer.subarray(reader.offset);
        return value;
      } catch (e) {
        if (!(e instanceof WireTruncatedError) || this.#ended) throw e;
      }
      await this.#pull();
    }
  }

  /**
   * The framed data that comes next, chunk by chunk; the bytes after its end stay unread. Call
   * `drain()` when done with it (also after a failure), so that the next request is read in step.
   */
  framed(): FramedData {
    const decoder = new FramedDecoder();
    const queue: Uint8Array[] = [];
    const next = async (): Promise<Uint8Array | undefined> => {
      while (queue.length === 0) {
        if (decoder.done) return undefined;
        if (this.#buffer.length === 0) {
          if (this.#ended) decoder.finish();
          await this.#pull();
          continue;
        }
        const chunk = decoder.push(this.#buffer);
        this.#buffer = chunk.rest;
        queue.push(...chunk.data.map((d) => d.slice()));
      }
      return queue.shift();
    };
    return {
      async *[Symbol.asyncIterator]() {
        for (let chunk = await next(); chunk !== undefined; chunk = await next()) yield chunk;
      },
      async drain() {
        while ((await next()) !== undefined);
      },
    };
  }

  /** Reads one more chunk; callers at once share the one read. */
  #pull(): Promise<void> {
    return this.#pulling ??= this.#reader.read().then(({ value, done }) => {
      if (done) this.#ended = true;
      else this.#buffer = this.#buffer.length === 0 ? value : concatBytes([this.#buffer, value]);
    }).finally(() => this.#pulling = undefined);
  }

  /**
   * Resolves true once the client hangs up, false once `signal` aborts first. What the client
   * sends meanwhile is kept for the next request.
   */
  async hungUp(signal: AbortSignal): Promise<boolean> {
    const aborted = new Promise<void>((resolve) =>
      signal.addEventListener("abort", () => resolve())
    );
    while (!this.#ended && !signal.aborted) await Promise.race([this.#pull(), aborted]);
    return this.#ended && !signal.aborted;
  }

  /** Stops reading (the stream is cancelled). */
  async close(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

/** Framed data of a request (see {@link Incoming.framed}). */
export interface FramedData extends AsyncIterable<Uint8Array> {
  /** Reads and drops what is left up to the end frame. */
  drain(): Promise<void>;
}

/** Writes replies and stderr messages in the order they are sent. */
export class Outgoing {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #pending: Promise<void> = Promise.resolve();
  #failed: unknown;

  constructor(stream: WritableStream<Uint8Array>, readonly version: () => number) {
    this.#writer = stream.getWriter();
  }

  /** Queues `bytes`; a write error is kept and thrown by the next {@link flush}. */
  send(bytes: Uint8Array): void {
    this.#pending = this.#pending.then(() =>
      this.#failed === undefined
        ? this.#writer.write(bytes).catch((e) => {
          this.#failed = e;
        })
        : undefined
    );
  }

  /** Queues what `write` appends to a fresh writer. */
  reply(write: (writer: WireWriter) => void): void {
    const writer = new WireWriter();
    write(writer);
    this.send(writer.finish());
  }

  /** Queues one stderr message. */
  stderr(message: StderrMessage): void {
    this.reply((w) => writeStderrMessage(w, message, this.version()));
  }

  /** Waits until everything queued is written; throws the first write error. */
  async flush(): Promise<void> {
    await this.#pending;
    if (this.#failed !== undefined) throw this.#failed;
  }

  async close(): Promise<void> {
    await this.#pending;
    await this.#writer.close().catch(() => {});
  }
}
