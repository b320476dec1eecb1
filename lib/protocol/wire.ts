/**
 * The encoding under every Nix protocol message: unsigned 64-bit little-endian integers, booleans
 * as integers, byte strings as a length, the bytes and zero padding to a multiple of 8, and
 * collections as a count followed by their items (`serialise.hh`).
 */

import { concatBytes, decodeNixString, encodeNixString } from "../hashing/mod.ts";
import { InternalError } from "../sys/mod.ts";

/** Malformed protocol input: carries the byte offset where reading failed. */
export class WireFormatError extends SyntaxError {
  constructor(message: string, readonly offset: number) {
    super(`${message} at byte ${offset}`);
    this.name = "WireFormatError";
  }
}

/** The input ended before the value did; a stream reader may retry once more bytes arrive. */
export class WireTruncatedError extends WireFormatError {
  constructor(what: string, offset: number) {
    super(`Truncated input: ${what} runs past the end`, offset);
    this.name = "WireTruncatedError";
  }
}

/** Bounds on lengths read from the wire, so that a bad count cannot exhaust memory. */
export interface WireLimits {
  /** Longest byte string accepted (default 64 MiB, far above any path, hash or log line). */
  maxStringLength: number;
  /** Most items in one collection (default 2^24). */
  maxCollectionSize: number;
}

export const DEFAULT_WIRE_LIMITS: WireLimits = {
  maxStringLength: 64 * 1024 * 1024,
  maxCollectionSize: 1 << 24,
};

/** Reads wire values from a byte array; every failure is a {@link WireFormatError}. */
export class WireReader {
  #offset = 0;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly limits: WireLimits;

  constructor(bytes: Uint8Array, limits: WireLimits = DEFAULT_WIRE_LIMITS) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.limits = limits;
  }

  /** A reader over chunks as they came off a stream, joined. */
  static fromChunks(chunks: Iterable<Uint8Array>, limits?: WireLimits): WireReader {
    return new WireReader(concatBytes([...chunks]), limits);
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#offset;
  }

  /** Bytes left to read. */
  get remaining(): number {
    return this.#bytes.length - this.#offset;
  }

  /** A WireFormatError at the current offset (for codecs that reject a decoded value). */
  error(message: string): WireFormatError {
    return new WireFormatError(message, this.#offset);
  }

  #checkLimit(value: number, limit: number, what: string, start: number): void {
    if (value > limit) {
      throw new WireFormatError(
        `${capitalise(what)} ${value} exceeds the limit of ${limit}`,
        start,
      );
    }
  }

  #need(n: number, what: string): void {
    if (n > this.remaining) throw new WireTruncatedError(what, this.#offset);
  }

  /**
   * An unsigned 64-bit integer as a number; above 2^53 - 1 it is refused. Read the one field that
   * goes there, CollectGarbage's maxFreed (2^64 - 1 for no limit), with {@link readBigInt}.
   */
  readInt(what = "integer"): number {
    const start = this.#offset;
    const value = this.readBigInt(what);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new WireFormatError(`${capitalise(what)} ${value} is too large`, start);
    }
    return Number(value);
  }

  /** An unsigned 64-bit integer, in full. */
  readBigInt(what = "integer"): bigint {
    this.#need(8, what);
    const value = this.#view.getBigUint64(this.#offset, true);
    this.#offset += 8;
    return value;
  }

  /** A boolean: any non-zero integer is true, as Nix reads it. */
  readBool(what = "boolean"): boolean {
    return this.readInt(what) !== 0;
  }

  /** `n` raw bytes without length or padding. */
  readRaw(n: number, what = "data"): Uint8Array {
    this.#need(n, what);
    const out = this.#bytes.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    return out;
  }

  /** A length-prefixed byte string with its zero padding (checked). */
  readBytes(what = "string"): Uint8Array {
    const start = this.#offset;
    const length = this.readInt(`${what} length`);
    this.#checkLimit(length, this.limits.maxStringLength, `${what} length`, start);
    const data = this.readRaw(length, what);
    const padding = (8 - (length % 8)) % 8;
    const pad = this.readRaw(padding, `${what} padding`);
    if (pad.some((b) => b !== 0)) {
      throw new WireFormatError(`Non-zero padding after ${what}`, this.#offset - padding);
    }
    return data;
  }

  /** A byte string as text; bytes that are not UTF-8 survive as lone surrogates (Nix strings). */
  readString(what = "string"): string {
    return decodeNixString(this.readBytes(what));
  }

  /** A collection count, bounded by the limit and by the bytes left (each item takes 8 or more). */
  readCount(what = "collection"): number {
    const start = this.#offset;
    const count = this.readInt(`${what} size`);
    this.#checkLimit(count, this.limits.maxCollectionSize, `${what} size`, start);
    if (count * 8 > this.remaining) throw new WireTruncatedError(what, start);
    return count;
  }

  /** A count followed by that many items. */
  readList<T>(readItem: (reader: WireReader) => T, what = "list"): T[] {
    const count = this.readCount(what);
    const items: T[] = [];
    for (let i = 0; i < count; i++) items.push(readItem(this));
    return items;
  }

  /** A list of strings. */
  readStrings(what = "string list"): string[] {
    return this.readList((r) => r.readString(what), what);
  }

  /** Throws unless every byte was consumed. */
  expectEnd(what = "value"): void {
    if (this.remaining !== 0) throw this.error(`${this.remaining} bytes left after the ${what}`);
  }
}

/** Builds a wire message by appending values; `finish()` returns the bytes. */
export class WireWriter {
  #buffer = new Uint8Array(256);
  #length = 0;

  #reserve(n: number): void {
    if (this.#length + n <= this.#buffer.length) return;
    let size = this.#buffer.length * 2;
    while (size < this.#length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = next;
  }

  /** An unsigned integer (a safe integer, non-negative). */
  writeInt(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InternalError(`${value} is not an unsigned wire integer`);
    }
    return this.writeBigInt(BigInt(value));
  }

  /** An unsigned 64-bit integer given as a bigint (0 to 2^64 - 1). */
  writeBigInt(value: bigint): this {
    if (value < 0n || value >= 1n << 64n) {
      throw new InternalError(`${value} is not an unsigned 64-bit integer`);
    }
    this.#reserve(8);
    new DataView(this.#buffer.buffer).setBigUint64(this.#length, value, true);
    this.#length += 8;
    return this;
  }

  writeBool(value: boolean): this {
    return this.writeInt(value ? 1 : 0);
  }

  /** Raw bytes, no length, no padding. */
  writeRaw(bytes: Uint8Array): this {
    this.#reserve(bytes.length);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
    return this;
  }

  /** A length-prefixed, zero-padded byte string. */
  writeBytes(bytes: Uint8Array): this {
    this.writeInt(bytes.length).writeRaw(bytes);
    const padding = (8 - (bytes.length % 8)) % 8;
    this.#reserve(padding);
    this.#buffer.fill(0, this.#length, this.#length + padding);
    this.#length += padding;
    return this;
  }

  /** Text as bytes, the inverse of {@link WireReader.readString}. */
  writeString(text: string): this {
    return this.writeBytes(encodeNixString(text));
  }

  /** A count then each item. */
  writeList<T>(items: readonly T[], writeItem: (writer: WireWriter, item: T) => void): this {
    this.writeInt(items.length);
    for (const item of items) writeItem(this, item);
    return this;
  }

  writeStrings(items: readonly string[]): this {
    return this.writeList(items, (w, s) => w.writeString(s));
  }

  /** The bytes written so far (a copy). */
  finish(): Uint8Array<ArrayBuffer> {
    return this.#buffer.slice(0, this.#length);
  }
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
