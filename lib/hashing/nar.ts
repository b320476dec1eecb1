/**
 * The Nix archive (NAR) format, bytes only: its constants and event types, and a buffered writer
 * that emits NAR tokens to a sink. The strict parser is in nar_reader.ts; the file-system side
 * lives in lib/store/nar_fs.ts.
 *
 * Every token is `str(s)`: a u64 little-endian length, the bytes, zero padding to a multiple of 8.
 */

import { InternalError } from "../sys/mod.ts";

/** The first string of every NAR. */
export const NAR_MAGIC = "nix-archive-1";
/** Longest entry name accepted on parse (Linux NAME_MAX, as current Nix). */
export const NAR_MAX_NAME_LENGTH = 255;
/** Longest symlink target accepted on parse (PATH_MAX - 1, as current Nix). */
export const NAR_MAX_TARGET_LENGTH = 4095;

/** Bad NAR input: the message names what is wrong and the byte offset where it was found. */
export class NarSyntaxError extends SyntaxError {
  override name = "NarSyntaxError";
  constructor(message: string, readonly offset: number) {
    super(`${message} (NAR byte ${offset})`);
  }
}

/** One file-system object in a NAR; `path` is relative, names joined by `/`, `""` for the root. */
export type NarNode =
  | { type: "directory"; path: string }
  | { type: "regular"; path: string; executable: boolean; size: number; narOffset: number }
  | { type: "symlink"; path: string; target: string };

/** What {@link parseNar} yields: nodes in NAR order, each regular file followed by its contents. */
export type NarEvent = NarNode | { type: "contents"; chunk: Uint8Array };

const encoder = new TextEncoder();

/** Encodes a sequence of tokens as NAR strings (length, bytes, padding). */
function encodeTokens(...tokens: string[]): Uint8Array {
  const parts = tokens.map((t) => encoder.encode(t));
  const out = new Uint8Array(parts.reduce((n, p) => n + 8 + paddedLength(p.length), 0));
  let pos = 0;
  for (const p of parts) {
    writeU64(out, pos, p.length);
    out.set(p, pos + 8);
    pos += 8 + paddedLength(p.length);
  }
  return out;
}

/** `n` rounded up to the 8-byte boundary every NAR string is padded to. */
export function paddedLength(n: number): number {
  return n + (-n & 7); // arithmetic, not `(n + 7) & ~7`: files may pass 2 GiB (32-bit bitwise ops)
}

const MAGIC_TOKENS = encodeTokens(NAR_MAGIC);
const REGULAR_TOKENS = encodeTokens("(", "type", "regular", "contents");
const EXECUTABLE_TOKENS = encodeTokens("(", "type", "regular", "executable", "", "contents");

const SYMLINK_TOKENS = encodeTokens("(", "type", "symlink", "target");
const DIRECTORY_TOKENS = encodeTokens("(", "type", "directory");
const ENTRY_TOKENS = encodeTokens("entry", "(", "name");
const NODE_TOKENS = encodeTokens("node");
const CLOSE_TOKENS = encodeTokens(")");

/** The most bytes {@link writeNarFileHead} writes. */
export const NAR_FILE_HEAD_BYTES = EXECUTABLE_TOKENS.length + 8;
/** The most bytes {@link writeNarFileTail} writes. */
export const NAR_FILE_TAIL_BYTES = 7 + CLOSE_TOKENS.length;

/**
 * Writes how a regular file's node starts, up to its contents (its tokens, then its `size` as a
 * u64), at `into[at]`; returns the number of bytes written (at most {@link NAR_FILE_HEAD_BYTES}).
 * With {@link writeNarFileTail}, for a writer that writes a file's node without a
 * {@link NarWriter} (a thread that reads the file itself).
 */
export function writeNarFileHead(
  into: Uint8Array,
  at: number,
  executable: boolean,
  size: number,
): number {
  const tokens = executable ? EXECUTABLE_TOKENS : REGULAR_TOKENS;
  into.set(tokens, at);
  writeU64(into, at + tokens.length, size);
  return tokens.length + 8;
}

/**
 * Writes how a regular file's node of `size` bytes ends after its contents (the padding, then
 * `)`) at `into[at]`; returns the number of bytes written (at most {@link NAR_FILE_TAIL_BYTES}).
 */
export function writeNarFileTail(into: Uint8Array, at: number, size: number): number {
  return writeClose(into, at, paddedLength(size) - size);
}

/** Writes `padding` zero bytes and `)`; returns how many bytes that is. */
function writeClose(into: Uint8Array, at: number, padding: number): number {
  into.fill(0, at, at + padding);
  into.set(CLOSE_TOKENS, at + padding);
  return padding + CLOSE_TOKENS.length;
}

/** `n` as a u64, little-endian (numbers past 4 GiB too, where 32-bit bitwise ops fail). */
function writeU64(into: Uint8Array, at: number, n: number): void {
  const low = n >>> 0;
  const high = Math.floor(n / 0x1_0000_0000);
  into[at] = low;
  into[at + 1] = low >>> 8;
  into[at + 2] = low >>> 16;
  into[at + 3] = low >>> 24;
  into[at + 4] = high;
  into[at + 5] = high >>> 8;
  into[at + 6] = high >>> 16;
  into[at + 7] = high >>> 24;
}

/**
 * Receives each filled buffer of a {@link NarWriter}. It may keep the chunk only if it returns a
 * fresh buffer for the writer to fill next; otherwise the chunk is valid only during the call.
 */
export type NarSink = (chunk: Uint8Array) => Uint8Array | void;

/**
 * Writes a NAR through a buffer that the sink receives whenever it is full (and on `flush`).
 * Call order: `regular` then contents then `end`; `symlink`; `directory`, then per entry
 * `entry` + node + `end`, then `end`. `flush` at the very end.
 */
export class NarWriter {
  #sink: NarSink;
  #buf!: Uint8Array;
  #pos = 0;
  #flushed = 0;
  #remaining = 0;
  #padding = 0;

  constructor(sink: NarSink, options: { buffer?: Uint8Array } = {}) {
    this.#sink = sink;
    this.#use(options.buffer ?? new Uint8Array(1 << 20));
    this.#raw(MAGIC_TOKENS);
  }

  /** Bytes written so far, buffered ones included. */
  get size(): number {
    return this.#flushed + this.#pos;
  }

  /** Capacity of the current buffer. */
  get bufferSize(): number {
    return this.#buf.length;
  }

  /** Bytes that still fit the current buffer before it goes to the sink. */
  get room(): number {
    return this.#buf.length - this.#pos;
  }

  /** Starts a regular file of `size` bytes; its contents follow. */
  regular(executable: boolean, size: number): void {
    this.#ensure(NAR_FILE_HEAD_BYTES);
    this.#pos += writeNarFileHead(this.#buf, this.#pos, executable, size);
    this.#remaining = size;
    this.#padding = paddedLength(size) - size;
  }

  /** Appends file contents (copied into the buffer). */
  contents(bytes: Uint8Array): void {
    for (let off = 0; off < bytes.length;) {
      const view = this.contentsInPlace(bytes.length - off);
      view.set(bytes.subarray(off, off + view.length));
      off += view.length;
    }
  }

  /**
   * Reserves the next content bytes inside the buffer and returns them for the caller to fill
   * before any other call: exactly `max` bytes when `max` fits a buffer (so a small file stays in
   * one piece), else as many as fit. Lets files be read straight into the NAR without a copy.
   */
  contentsInPlace(max: number): Uint8Array {
    let n = max;
    if (max <= this.#buf.length) {
      this.#ensure(max);
    } else {
      if (this.#pos === this.#buf.length) this.flush();
      n = Math.min(max, this.#buf.length - this.#pos); // the buffer after a flush may be larger
    }
    this.#take(n);
    const view = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return view;
  }

  /** A symlink to `target`. */
  symlink(target: string): void {
    this.#raw(SYMLINK_TOKENS);
    this.#string(target);
    this.#raw(CLOSE_TOKENS);
  }

  /** Starts a directory; its entries follow, in byte-wise name order, then `end`. */
  directory(): void {
    this.#raw(DIRECTORY_TOKENS);
  }

  /** Starts the entry `name` of the current directory; its node follows, then `end`. */
  entry(name: string): void {
    this.#raw(ENTRY_TOKENS);
    this.#string(name);
    this.#raw(NODE_TOKENS);
  }

  /** Closes the current regular file (after all its contents), directory or entry. */
  end(): void {
    if (this.#remaining !== 0) {
      throw new InternalError(`NAR file closed with ${this.#remaining} bytes missing`);
    }
    this.#ensure(this.#padding + CLOSE_TOKENS.length);
    this.#pos += writeClose(this.#buf, this.#pos, this.#padding);
    this.#padding = 0;
  }

  /**
   * Hands any buffered bytes to the sink; with `sink`, hands them (even none) to it instead, this
   * once: one that hands something else over after them (a node another thread writes, between
   * two calls of this writer), and returns the buffer to go on in.
   */
  flush(sink?: NarSink): void {
    if (this.#pos === 0 && sink === undefined) return;
    const next = (sink ?? this.#sink)(this.#buf.subarray(0, this.#pos));
    this.#flushed += this.#pos;
    this.#pos = 0;
    if (next) this.#use(next);
  }

  #use(buffer: Uint8Array): void {
    if (buffer.length < 8192) {
      throw new InternalError(`NAR buffer of ${buffer.length} bytes is too small`);
    }
    this.#buf = buffer;
  }

  #take(n: number): void {
    if (n > this.#remaining) {
      throw new InternalError(`NAR file contents exceed the size announced`);
    }
    this.#remaining -= n;
  }

  #ensure(n: number): void {
    if (this.#buf.length - this.#pos < n) this.flush();
    if (this.#buf.length < n) {
      throw new InternalError(`${n} bytes do not fit a NAR buffer`);
    }
  }

  #raw(bytes: Uint8Array): void {
    this.#ensure(bytes.length);
    this.#buf.set(bytes, this.#pos);
    this.#pos += bytes.length;
  }

  #u64(n: number): void {
    this.#ensure(8);
    writeU64(this.#buf, this.#pos, n);
    this.#pos += 8;
  }

  #string(text: string): void {
    const worst = 16 + text.length * 3;
    if (worst > this.#buf.length) {
      const bytes = encoder.encode(text);
      this.#u64(bytes.length);
      this.#raw(bytes);
      this.#raw(new Uint8Array(paddedLength(bytes.length) - bytes.length));
      return;
    }
    this.#ensure(worst);
    const { written } = encoder.encodeInto(text, this.#buf.subarray(this.#pos + 8));
    this.#u64(written);
    const end = this.#pos + paddedLength(written);
    this.#buf.fill(0, this.#pos + written, end);
    this.#pos = end;
  }
}

/** Sorts names byte-wise by their UTF-8 encoding (code point order), as Nix orders entries. */
export function sortNames(names: string[]): string[] {
  names.sort();
  // UTF-16 order equals code point order unless a surrogate pair meets U+E000..U+FFFF.
  if (names.some((n) => /[\uD800-\uDFFF]/.test(n))) names.sort(compareCodePoints);
  return names;
}

function compareCodePoints(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(j)!;
    if (x !== y) return x - y;
    i += x > 0xffff ? 2 : 1;
    j += y > 0xffff ? 2 : 1;
  }
  return (a.length - i) - (b.length - j);
}
