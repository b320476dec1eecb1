/** The strict streaming NAR parser (see nar.ts for the format and its writer). */

import {
  NAR_MAGIC,
  NAR_MAX_NAME_LENGTH,
  NAR_MAX_TARGET_LENGTH,
  type NarEvent,
  NarSyntaxError,
  paddedLength,
} from "./nar.ts";

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
  const body = r.tryRead(paddedLength(length)) ?? await r.read(paddedLength(length));
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
        const pad = await r.read(paddedLength(size) - size);
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
