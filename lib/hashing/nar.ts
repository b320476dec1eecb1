/**
 * The Nix archive (NAR) format, bytes only: a buffered writer that emits NAR tokens to a sink and
 * a strict streaming parser. The file-system side lives in lib/store/nar_fs.ts.
 *
 * Every token is `str(s)`: a u64 little-endian length, the bytes, zero padding to a multiple of 8.
 */

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
  const out = new Uint8Array(parts.reduce((n, p) => n + 8 + padded(p.length), 0));
  const view = new DataView(out.buffer);
  let pos = 0;
  for (const p of parts) {
    view.setUint32(pos, p.length, true);
    out.set(p, pos + 8);
    pos += 8 + padded(p.length);
  }
  return out;
}

function padded(n: number): number {
  return (n + 7) & ~7;
}

const MAGIC_TOKENS = encodeTokens(NAR_MAGIC);
const REGULAR_TOKENS = encodeTokens("(", "type", "regular", "contents");
const EXECUTABLE_TOKENS = encodeTokens("(", "type", "regular", "executable", "", "contents");
const SYMLINK_TOKENS = encodeTokens("(", "type", "symlink", "target");
const DIRECTORY_TOKENS = encodeTokens("(", "type", "directory");
const ENTRY_TOKENS = encodeTokens("entry", "(", "name");
const NODE_TOKENS = encodeTokens("node");
const CLOSE_TOKENS = encodeTokens(")");

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
  #view!: DataView;
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

  /** Starts a regular file of `size` bytes; its contents follow. */
  regular(executable: boolean, size: number): void {
    this.#raw(executable ? EXECUTABLE_TOKENS : REGULAR_TOKENS);
    this.#u64(size);
    this.#remaining = size;
    this.#padding = padded(size) - size;
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
      n = this.#buf.length - this.#pos;
    }
    this.#take(n);
    const view = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return view;
  }

  /**
   * Has `send` deliver the next `n` content bytes out of band (e.g. a thread reads the file
   * itself): the writer flushes, hands `send` its now empty buffer, and goes on in the buffer
   * `send` returns.
   */
  contentsElsewhere(n: number, send: (buffer: Uint8Array) => Uint8Array): void {
    this.flush();
    this.#take(n);
    this.#use(send(this.#buf));
    this.#flushed += n;
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
      throw new RangeError(`Internal error: NAR file closed with ${this.#remaining} bytes missing`);
    }
    this.#ensure(this.#padding + 8);
    this.#buf.fill(0, this.#pos, this.#pos + this.#padding);
    this.#pos += this.#padding;
    this.#padding = 0;
    this.#raw(CLOSE_TOKENS);
  }

  /** Hands any buffered bytes to the sink. */
  flush(): void {
    if (this.#pos === 0) return;
    const next = this.#sink(this.#buf.subarray(0, this.#pos));
    this.#flushed += this.#pos;
    this.#pos = 0;
    if (next) this.#use(next);
  }

  #use(buffer: Uint8Array): void {
    if (buffer.length < 8192) {
      throw new RangeError(`Internal error: NAR buffer of ${buffer.length} bytes is too small`);
    }
    this.#buf = buffer;
    this.#view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }

  #take(n: number): void {
    if (n > this.#remaining) {
      throw new RangeError(`Internal error: NAR file contents exceed the size announced`);
    }
    this.#remaining -= n;
  }

  #ensure(n: number): void {
    if (this.#buf.length - this.#pos < n) this.flush();
    if (this.#buf.length < n) {
      throw new RangeError(`Internal error: ${n} bytes do not fit a NAR buffer`);
    }
  }

  #raw(bytes: Uint8Array): void {
    this.#ensure(bytes.length);
    this.#buf.set(bytes, this.#pos);
    this.#pos += bytes.length;
  }

  #u64(n: number): void {
    this.#ensure(8);
    this.#view.setUint32(this.#pos, n >>> 0, true);
    this.#view.setUint32(this.#pos + 4, Math.floor(n / 0x1_0000_0000), true);
    this.#pos += 8;
  }

  #string(text: string): void {
    const worst = 16 + text.length * 3;
    if (worst > this.#buf.length) {
      const bytes = encoder.encode(text);
      this.#u64(bytes.length);
      this.#raw(bytes);
      this.#raw(new Uint8Array(padded(bytes.length) - bytes.length));
      return;
    }
    this.#ensure(worst);
    const { written } = encoder.encodeInto(text, this.#buf.subarray(this.#pos + 8));
    this.#u64(written);
    const end = this.#pos + padded(written);
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

/** Reads a byte stream in exact-sized pieces, tracking the offset; sync when data is buffered. */
class _ByteReader {
  #it: AsyncIterator<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);
  #pos = 0;
  #base = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]();
  }

  /** Offset of the next unread byte. */
  get offset(): number {
    return this.#base + this.#pos;
  }

  /** `n` bytes if they are all in the current chunk, else undefined (nothing consumed). */
  tryRead(n: number): Uint8Array | undefined {
    if (this.#chunk.length - this.#pos < n) return undefined;
    const out = this.#chunk.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  /** Exactly `n` bytes; throws when the input ends first. */
  async read(n: number): Promise<Uint8Array> {
    const fast = this.tryRead(n);
    if (fast) return fast;
    const out = new Uint8Array(n);
    let have = 0;
    while (have < n) {
      const piece = await this.readSome(n - have);
      out.set(piece, have);
      have += piece.length;
    }
    return out;
  }

  /** Between 1 and `max` bytes, without copying; throws when the input ends. */
  async readSome(max: number): Promise<Uint8Array> {
    while (this.#pos >= this.#chunk.length) {
      if (!(await this.#next())) throw new NarSyntaxError("NAR is truncated", this.offset);
    }
    const n = Math.min(max, this.#chunk.length - this.#pos);
    const out = this.#chunk.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  /** Whether the input has no bytes left. */
  async atEnd(): Promise<boolean> {
    while (this.#pos >= this.#chunk.length) {
      if (!(await this.#next())) return true;
    }
    return false;
  }

  /** Stops reading (cancels the source). */
  async close(): Promise<void> {
    await this.#it.return?.();
  }

  async #next(): Promise<boolean> {
    const r = await this.#it.next();
    if (r.done) return false;
    this.#base += this.#chunk.length;
    this.#chunk = r.value;
    this.#pos = 0;
    return true;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const lossy = new TextDecoder();

/** Reads one NAR string token of at most `limit` bytes, checking its padding. */
async function readToken(r: _ByteReader, limit: number, what: string): Promise<Uint8Array> {
  const at = r.offset;
  const head = r.tryRead(8) ?? await r.read(8);
  const view = new DataView(head.buffer, head.byteOffset, 8);
  const high = view.getUint32(4, true);
  const length = view.getUint32(0, true);
  if (high !== 0 || length > limit) {
    throw new NarSyntaxError(`NAR ${what} is too long (over ${limit} bytes)`, at);
  }
  const body = r.tryRead(padded(length)) ?? await r.read(padded(length));
  for (let i = length; i < body.length; i++) {
    if (body[i] !== 0) throw new NarSyntaxError(`NAR ${what} has non-zero padding`, at);
  }
  return body.subarray(0, length);
}

const TAG_LIMIT = 32;

async function readTag(r: _ByteReader): Promise<string> {
  const bytes = await readToken(r, TAG_LIMIT, "tag");
  return String.fromCharCode(...bytes);
}

async function expectTag(r: _ByteReader, expected: string): Promise<void> {
  const at = r.offset;
  const tag = await readTag(r);
  if (tag !== expected) throw unexpectedTag(tag, `'${expected}'`, at);
}

function unexpectedTag(tag: string, expected: string, at: number): NarSyntaxError {
  return new NarSyntaxError(`Unexpected NAR tag '${tag}' (expected ${expected})`, at);
}

async function readU64(r: _ByteReader): Promise<number> {
  const at = r.offset;
  const head = r.tryRead(8) ?? await r.read(8);
  const view = new DataView(head.buffer, head.byteOffset, 8);
  const n = view.getUint32(4, true) * 0x1_0000_0000 + view.getUint32(0, true);
  if (!Number.isSafeInteger(n)) throw new NarSyntaxError(`NAR file size ${n} is too large`, at);
  return n;
}

function decodeText(bytes: Uint8Array, what: string, at: number): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new NarSyntaxError(`NAR ${what} '${lossy.decode(bytes)}' is not valid UTF-8`, at);
  }
}

function checkName(name: Uint8Array, previous: Uint8Array | undefined, dir: string, at: number) {
  const text = lossy.decode(name);
  if (
    name.length === 0 || text === "." || text === ".." || name.includes(0x2f) || name.includes(0)
  ) {
    throw new NarSyntaxError(`NAR contains invalid file name '${text}'`, at);
  }
  if (previous) {
    const order = compareBytes(previous, name);
    if (order === 0) {
      throw new NarSyntaxError(`NAR directory '/${dir}' has duplicate entry '${text}'`, at);
    }
    if (order > 0) {
      throw new NarSyntaxError(
        `NAR directory '/${dir}' is not sorted: '${text}' after '${lossy.decode(previous)}'`,
        at,
      );
    }
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

interface _OpenDirectory {
  path: string;
  previous: Uint8Array | undefined;
}

/**
 * Parses a NAR strictly: magic, tag order, padding, entry names (not empty, `.`, `..`, no `/` or
 * NUL, UTF-8, strictly increasing byte-wise), the executable marker, no trailing bytes. Throws a
 * {@link NarSyntaxError} at the first fault; the consumer must take each contents chunk before
 * asking for the next event. Stops reading the source when the consumer stops early.
 */
export async function* parseNar(source: AsyncIterable<Uint8Array>): AsyncGenerator<NarEvent> {
  const r = new _ByteReader(source);
  try {
    // A short or oversized first token is a bad magic too; a failing source keeps its own error.
    const magic = await readToken(r, 64, "magic").catch((e) => {
      if (e instanceof NarSyntaxError) return undefined;
      throw e;
    });
    if (!magic || lossy.decode(magic) !== NAR_MAGIC) {
      throw new NarSyntaxError("Input is not a Nix archive (bad magic)", 0);
    }
    const stack: _OpenDirectory[] = [];
    let path = "";
    nodes: while (true) {
      await expectTag(r, "(");
      await expectTag(r, "type");
      const at = r.offset;
      const kind = await readTag(r);
      if (kind === "regular") {
        let tagAt = r.offset;
        let tag = await readTag(r);
        let executable = false;
        if (tag === "executable") {
          const markerAt = r.offset;
          if ((await readToken(r, TAG_LIMIT, "executable marker")).length !== 0) {
            throw new NarSyntaxError("NAR executable marker has a non-empty value", markerAt);
          }
          executable = true;
          tagAt = r.offset;
          tag = await readTag(r);
        }
        if (tag !== "contents") throw unexpectedTag(tag, "'contents'", tagAt);
        const size = await readU64(r);
        yield { type: "regular", path, executable, size, narOffset: r.offset };
        for (let left = size; left > 0;) {
          const chunk = await r.readSome(left);
          left -= chunk.length;
          yield { type: "contents", chunk };
        }
        const padAt = r.offset;
        const pad = await r.read(padded(size) - size);
        if (pad.some((b) => b !== 0)) {
          throw new NarSyntaxError("NAR file contents have non-zero padding", padAt);
        }
        await expectTag(r, ")");
      } else if (kind === "symlink") {
        await expectTag(r, "target");
        const targetAt = r.offset;
        const bytes = await readToken(r, NAR_MAX_TARGET_LENGTH, "symlink target");
        if (bytes.length === 0 || bytes.includes(0)) {
          throw new NarSyntaxError(`NAR symlink '/${path}' has an invalid target`, targetAt);
        }
        yield { type: "symlink", path, target: decodeText(bytes, "symlink target", targetAt) };
        await expectTag(r, ")");
      } else if (kind === "directory") {
        yield { type: "directory", path };
        stack.push({ path, previous: undefined });
      } else {
        throw unexpectedTag(kind, "'regular', 'symlink' or 'directory'", at);
      }
      // The node is complete, or a directory was opened: find the next node.
      let closedChild = kind !== "directory";
      while (stack.length > 0) {
        const dir = stack[stack.length - 1];
        if (closedChild) await expectTag(r, ")");
        const tagAt = r.offset;
        const tag = await readTag(r);
        if (tag === ")") {
          stack.pop();
          closedChild = true;
          continue;
        }
        if (tag !== "entry") throw unexpectedTag(tag, "'entry' or ')'", tagAt);
        await expectTag(r, "(");
        await expectTag(r, "name");
        const nameAt = r.offset;
        const name = (await readToken(r, NAR_MAX_NAME_LENGTH, "file name")).slice();
        checkName(name, dir.previous, dir.path, nameAt);
        dir.previous = name;
        const text = decodeText(name, "file name", nameAt);
        path = dir.path === "" ? text : `${dir.path}/${text}`;
        await expectTag(r, "node");
        continue nodes;
      }
      break;
    }
    if (!(await r.atEnd())) throw new NarSyntaxError("Trailing data after the NAR", r.offset);
  } finally {
    await r.close();
  }
}
