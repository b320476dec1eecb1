/**
 * Builder output as Nix 2.8 treats it (`handleChildOutput`, `flushLine`, `filterANSIEscapes`):
 * one pipeline takes the raw bytes to the compressed log file and, split into lines, to the
 * failure-message tail, the live `-L` printer and the silence clock.
 */

import { dirname } from "node:path";
import { concatBytes } from "../hashing/mod.ts";
import { removeTree } from "../store/mod.ts";

/**
 * Nix's line assembly, on bytes: `\r` moves the write position back to the start of the current
 * line (what follows overwrites it, the rest stays), `\n` ends the line, and `flush()` at EOF
 * emits a last unterminated line. Lines are decoded as UTF-8 once complete, so a character split
 * across chunks comes out whole.
 */
export class LogLineSplitter {
  #line = new Uint8Array(256);
  #length = 0;
  #pos = 0;
  readonly #decoder = new TextDecoder();

  /** Feeds a chunk; returns the lines it completed. */
  push(chunk: Uint8Array): string[] {
    const lines: string[] = [];
    for (const c of chunk) {
      if (c === 0x0d) {
        this.#pos = 0;
      } else if (c === 0x0a) {
        lines.push(this.#take());
      } else {
        if (this.#pos === this.#line.length) {
          const grown = new Uint8Array(this.#line.length * 2);
          grown.set(this.#line);
          this.#line = grown;
        }
        this.#line[this.#pos++] = c;
        if (this.#pos > this.#length) this.#length = this.#pos;
      }
    }
    return lines;
  }

  /** At EOF: the unterminated last line, if it is not empty. */
  flush(): string[] {
    return this.#length > 0 ? [this.#take()] : [];
  }

  #take(): string {
    const line = this.#decoder.decode(this.#line.subarray(0, this.#length));
    this.#length = 0;
    this.#pos = 0;
    return line;
  }
}

/** A TransformStream from raw builder output to its lines (see `LogLineSplitter`). */
export function splitLogLines(): TransformStream<Uint8Array, string> {
  const splitter = new LogLineSplitter();
  return new TransformStream({
    transform(chunk, controller) {
      for (const line of splitter.push(chunk)) controller.enqueue(line);
    },
    flush(controller) {
      for (const line of splitter.flush()) controller.enqueue(line);
    },
  });
}

/** The last `capacity` lines, for the failure message (Nix's `log-lines`, 10 in 2.8). */
export class LogTail {
  readonly #lines: string[] = [];

  constructor(readonly capacity: number) {}

  push(line: string): void {
    if (this.capacity <= 0) return;
    this.#lines.push(line);
    if (this.#lines.length > this.capacity) this.#lines.shift();
  }

  get lines(): string[] {
    return [...this.#lines];
  }
}

/** `last N log lines:\n> line\n...` as Nix 2.8 appends it to a builder failure; "" if empty. */
export function formatLogTail(lines: readonly string[]): string {
  if (lines.length === 0) return "";
  return `last ${lines.length} log lines:\n` + lines.map((l) => `> ${l}\n`).join("");
}

/**
 * Nix's `filterANSIEscapes`: drops escape sequences except colour (`ESC [ ... m`) unless
 * `filterAll`, expands tabs to 8-column stops, drops `\r` and `\a`, and cuts after `width`
 * printed characters.
 */
export function filterAnsiEscapes(
  text: string,
  options: { filterAll?: boolean; width?: number } = {},
): string {
  const width = options.width ?? Infinity;
  const chars = [...text];
  let out = "";
  let w = 0;
  let i = 0;
  const inRange = (c: string | undefined, lo: number, hi: number) =>
    c !== undefined && c.charCodeAt(0) >= lo && c.charCodeAt(0) <= hi;
  while (w < width && i < chars.length) {
    const c = chars[i];
    if (c === "\x1b") {
      let escape = chars[i++];
      let last = "";
      if (chars[i] === "[") {
        escape += chars[i++];
        while (inRange(chars[i], 0x30, 0x3f)) escape += chars[i++];
        while (inRange(chars[i], 0x20, 0x2f)) escape += chars[i++];
        if (inRange(chars[i], 0x40, 0x7e)) escape += last = chars[i++];
      } else if (inRange(chars[i], 0x40, 0x5f)) {
        escape += chars[i++];
      }
      if (!options.filterAll && last === "m") out += escape;
    } else if (c === "\t") {
      i++;
      out += " ";
      w++;
      while (w < width && w % 8 !== 0) {
        out += " ";
        w++;
      }
    } else if (c === "\r" || c === "\x07") {
      i++;
    } else {
      w++;
      out += c;
      i++;
    }
  }
  return out;
}

/** Logs up to this size are kept in memory and compressed in one go when they end. */
const LOG_BUFFER_BYTES = 1 << 16;

/**
 * Opens a gzip-compressed log file (parent directories created) as a byte sink. Nix writes
 * bzip2 (`<drv>.bz2`); kiln writes gzip (`<drv>.gz`), which `zcat` and `nix log`-like readers
 * can stream. A small log (most builds) is written whole when the sink closes; once it passes
 * 64 KiB it is streamed through a CompressionStream instead. With `defer`, closing a small log
 * hands its write to `defer` instead of waiting for it: creating a file costs a build's critical
 * path a millisecond or more on a busy file system. A builder that printed nothing leaves no file
 * (and none from an earlier build of the same derivation): where creating a file (and its
 * directory) costs more than running a trivial builder, that is most of a chain's log writing;
 * `openBuildLog` gives such a build's log as empty, as Nix prints its empty log file. One that
 * failed gets its empty file ({@link writeEmptyLog}), as its log is all there is to see of it.
 */
export function openCompressedLog(
  path: string,
  options: { defer?: (write: Promise<void>) => void } = {},
): Promise<WritableStream<Uint8Array>> {
  let buffered: Uint8Array[] = [];
  let size = 0;
  let streaming:
    | { writer: WritableStreamDefaultWriter<BufferSource>; done: Promise<void> }
    | undefined;
  const startStreaming = async () => {
    Deno.mkdirSync(dirname(path), { recursive: true });
    const file = await Deno.open(path, { write: true, create: true, truncate: true });
    const gzip = new CompressionStream("gzip");
    const writer = gzip.writable.getWriter();
    streaming = { writer, done: gzip.readable.pipeTo(file.writable) };
    for (const chunk of buffered.splice(0)) await writer.write(chunk as Uint8Array<ArrayBuffer>);
  };
  return Promise.resolve(
    new WritableStream({
      write: async (chunk) => {
        if (streaming) return await streaming.writer.write(chunk as Uint8Array<ArrayBuffer>);
        buffered.push(chunk.slice());
        size += chunk.length;
        if (size > LOG_BUFFER_BYTES) await startStreaming();
      },
      close: async () => {
        if (streaming) {
          await streaming.writer.close();
          await streaming.done;
          return;
        }
        const write = size === 0
          ? Promise.resolve(path).then(removeTree) // a stat, commonly: no thread needed
          : gzip(buffered.length === 1 ? buffered[0] : concatBytes(buffered, size))
            .then((bytes) => writeWhole(path, bytes));
        if (options.defer) options.defer(write);
        else await write;
      },
      abort: async (reason) => {
        buffered = [];
        if (!streaming) return;
        await streaming.writer.abort(reason);
        await streaming.done.catch(() => {});
      },
    }),
  );
}

/** Writes the log file of a builder that printed nothing (the gzip of no bytes). */
export function writeEmptyLog(path: string): Promise<void> {
  return writeWhole(path, EMPTY_GZIP);
}

/** The gzip file of no bytes, as `gzip -n` writes it. */
// deno-fmt-ignore
const EMPTY_GZIP = new Uint8Array([
  0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0,
]);

/** `bytes` gzip-compressed (a Web CompressionStream: `node:zlib` costs ~20 ms to load). */
async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Async: the file system work runs off the main thread, which other builds may need. */
async function writeWhole(path: string, bytes: Uint8Array): Promise<void> {
  try {
    await Deno.writeFile(path, bytes); // its directory exists but for a run's first few logs
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeFile(path, bytes);
  }
}

export interface BuildLogOptions {
  /** How many last lines to keep (Nix's `log-lines`). */
  logLines: number;
  /** `max-build-log-size` in bytes; 0 or absent means no limit. */
  maxLogSize?: number;
  /** Receives the raw bytes (e.g. `openCompressedLog`); closed at EOF. */
  logFile?: WritableStream<Uint8Array>;
  /** Each completed line, for live display (`-L`). */
  onLine?: (line: string) => void;
  /** Called for every chunk before it is processed: resets the silence clock. */
  onChunk?: () => void;
  /** Called once when the output passes `maxLogSize`; the exceeding chunk is not logged. */
  onLogLimit?: () => void;
}

export interface BuildLogSummary {
  /** Bytes received from the builder. */
  bytes: number;
  /** The last `logLines` lines. */
  tail: string[];
  /** Whether the output passed `maxLogSize` (reading stopped there). */
  limitExceeded: boolean;
}

/**
 * Runs builder output through the log pipeline until EOF (or the size limit): byte meter ->
 * raw bytes to `logFile` -> line splitter -> tail and `onLine`. Resolves once the log file is
 * closed; rejects (and aborts the log file) if any stage fails.
 */
export async function pumpBuildLog(
  output: ReadableStream<Uint8Array>,
  options: BuildLogOptions,
): Promise<BuildLogSummary> {
  const tail = new LogTail(options.logLines);
  const splitter = new LogLineSplitter();
  const logWriter = options.logFile?.getWriter();
  const take = (lines: string[]) => {
    for (const line of lines) {
      tail.push(line);
      options.onLine?.(line);
    }
  };
  let bytes = 0;
  let limitExceeded = false;
  // A plain read loop: a chain of TransformStreams costs more than the work for small logs. The
  // reader keeps its lock: the stream is done with either way, and a release makes an Error.
  const reader = output.getReader();
  try {
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      const chunk = read.value;
      options.onChunk?.();
      bytes += chunk.length;
      if (options.maxLogSize && bytes > options.maxLogSize) {
        limitExceeded = true;
        options.onLogLimit?.();
        await reader.cancel();
        break;
      }
      await logWriter?.write(chunk);
      take(splitter.push(chunk));
    }
    await logWriter?.close();
    take(splitter.flush());
  } catch (error) {
    await reader.cancel(error).catch(() => {});
    await logWriter?.abort(error).catch(() => {});
    throw error;
  }
  return { bytes, tail: tail.lines, limitExceeded };
}
