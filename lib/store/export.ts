/**
 * Nix's export format (`nix-store --export` / `--import`): per path, u64 1, the path's NAR, u64
 * 0x4558494e ("NIXE"), the path, its references (a count, then each), its deriver or "", and
 * u64 0 (no legacy signature); after the last path, u64 0. Numbers are little-endian u64,
 * strings a u64 length and their bytes padded with zeros to a multiple of 8, as in a NAR.
 * The format carries neither signatures nor content addresses: an imported path has none, as
 * in Nix.
 */

import { createHasher, NAR_MAGIC, paddedLength, parseStorePath } from "../hashing/mod.ts";
import type { PathInfo } from "./metadata_db.ts";
import { topoSortPaths } from "./queries.ts";

/** The number after each path's NAR: "NIXE" read as a little-endian integer. */
export const EXPORT_MAGIC = 0x4558494e;

/** An export stream that is not one: bad framing, a wrong magic number, a truncated end. */
export class ExportSyntaxError extends SyntaxError {
  override name = "ExportSyntaxError";
}

/** What {@link exportPaths} reads from a store. */
export interface ExportSource {
  queryPathInfo(path: string): PathInfo | undefined;
  narFromPath(path: string): ReadableStream<Uint8Array>;
}

/** What {@link importPaths} needs of a store. */
export interface ImportTarget {
  readonly storeDir: string;
  addToStore(info: PathInfo, nar: AsyncIterable<Uint8Array>): Promise<void>;
}

/**
 * The export of `paths` (not their closures), dependencies first as Nix orders them. Throws when
 * a path is not valid, or when its NAR no longer has the hash the store recorded (as Nix does,
 * so that corruption does not spread).
 */
export async function* exportPaths(
  store: ExportSource,
  paths: Iterable<string>,
): AsyncGenerator<Uint8Array> {
  const info = (path: string): PathInfo => {
    const found = store.queryPathInfo(path);
    if (found === undefined) throw new RangeError(`Path '${path}' is not valid`);
    return found;
  };
  const unique = [...new Set(paths)];
  for (const path of unique) info(path);
  for (const path of topoSortPaths(unique, (p) => info(p).references).reverse()) {
    const { narHash, references, deriver } = info(path);
    yield encodeNumber(1);
    const hasher = createHasher(narHash.algorithm);
    for await (const chunk of store.narFromPath(path)) {
      hasher.update(chunk);
      yield chunk;
    }
    const actual = hasher.digest();
    if (!actual.equals(narHash)) {
      throw new Error(
        `Hash of path '${path}' has changed from '${narHash.toNix32Prefixed()}' to '${actual.toNix32Prefixed()}'`,
      );
    }
    yield encodeNumber(EXPORT_MAGIC);
    yield encodeString(path);
    yield encodeNumber(references.length);
    for (const reference of references) yield encodeString(reference);
    yield encodeString(deriver ?? "");
    yield encodeNumber(0);
  }
  yield encodeNumber(0);
}

/**
 * Adds every path of export stream `source` to `store` in its order, returning their paths.
 * Each path is added when it is complete (its NAR checked against the hash of the bytes read,
 * its references valid), so a failure leaves the paths before it added and nothing of its own.
 * A legacy signature is read and ignored, as Nix does.
 */
export async function importPaths(
  store: ImportTarget,
  source: AsyncIterable<Uint8Array>,
): Promise<string[]> {
  const reader = new ExportReader(source);
  const imported: string[] = [];
  for (;;) {
    const marker = await reader.readNumber();
    if (marker === 0) break;
    if (marker !== 1) {
      throw new ExportSyntaxError(
        "Input does not look like something made by 'nix-store --export'",
      );
    }
    const nar = await readNarFraming(reader);
    if (await reader.readNumber() !== EXPORT_MAGIC) {
      throw new ExportSyntaxError("Nix archive cannot be imported; wrong format");
    }
    const path = await reader.readText();
    parseStorePath(store.storeDir, path);
    const references: string[] = [];
    for (let n = await reader.readNumber(); n > 0; n--) {
      const reference = await reader.readText();
      parseStorePath(store.storeDir, reference);
      references.push(reference);
    }
    const deriver = await reader.readText();
    if (deriver !== "") parseStorePath(store.storeDir, deriver);
    if (await reader.readNumber() === 1) await reader.readString(); // legacy signature
    const hasher = createHasher("sha256");
    for (const chunk of nar) hasher.update(chunk);
    const info: PathInfo = {
      path,
      narHash: hasher.digest(),
      narSize: nar.reduce((n, c) => n + c.length, 0),
      references: [...new Set(references)].sort(),
      registrationTime: Math.floor(Date.now() / 1000),
      signatures: [],
      ultimate: false,
    };
    if (deriver !== "") info.deriver = deriver;
    await store.addToStore(info, toAsync(nar));
    imported.push(path);
  }
  return imported;
}

/** Longest NAR token worth decoding; a longer string where a token belongs is no NAR. */
const MAX_TOKEN = 64;

/**
 * Reads one NAR's bytes off `reader` by its framing alone (parentheses, and the strings that
 * follow `name`, `target` and `contents` taken as data); the store's NAR parser checks the rest.
 */
async function readNarFraming(reader: ExportReader): Promise<Uint8Array[]> {
  const parts: Uint8Array[] = [];
  const token = async (): Promise<string> => {
    const raw = await reader.readString(parts);
    return raw.length > MAX_TOKEN ? "" : new TextDecoder().decode(raw);
  };
  if (await token() !== NAR_MAGIC) {
    throw new ExportSyntaxError("Export holds no NAR where one belongs");
  }
  let depth = 0;
  do {
    const t = await token();
    if (t === "(") depth++;
    else if (t === ")") depth--;
    else if (t === "name" || t === "target" || t === "contents") await reader.readString(parts);
    else if (depth === 0) {
      throw new ExportSyntaxError("Export holds a NAR that does not start with '('");
    }
  } while (depth > 0);
  return parts;
}

/** Reads numbers and strings of Nix's serialisation from a byte stream. */
class ExportReader {
  readonly #it: AsyncIterator<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);
  #pos = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]();
  }

  /** Exactly `n` bytes (a copy), also pushed to `record` when given. */
  async read(n: number, record?: Uint8Array[]): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    for (let have = 0; have < n;) {
      while (this.#pos >= this.#chunk.length) {
        const next = await this.#it.next();
        if (next.done) throw new ExportSyntaxError("Export stream ends too early");
        this.#chunk = next.value;
        this.#pos = 0;
      }
      const take = Math.min(n - have, this.#chunk.length - this.#pos);
      out.set(this.#chunk.subarray(this.#pos, this.#pos + take), have);
      this.#pos += take;
      have += take;
    }
    record?.push(out);
    return out;
  }

  async readNumber(record?: Uint8Array[]): Promise<number> {
    const bytes = await this.read(8, record);
    const value = new DataView(bytes.buffer).getBigUint64(0, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new ExportSyntaxError(`Number ${value} in export stream is too large`);
    }
    return Number(value);
  }

  /** A string's bytes, without its padding (which must be zeros). */
  async readString(record?: Uint8Array[]): Promise<Uint8Array> {
    const length = await this.readNumber(record);
    const padded = await this.read(paddedLength(length), record);
    if (padded.subarray(length).some((b) => b !== 0)) {
      throw new ExportSyntaxError("Export stream has a string with non-zero padding");
    }
    return padded.subarray(0, length);
  }

  async readText(): Promise<string> {
    return new TextDecoder().decode(await this.readString());
  }
}

function encodeNumber(n: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(n), true);
  return bytes;
}

function encodeString(text: string): Uint8Array {
  const data = new TextEncoder().encode(text);
  const bytes = new Uint8Array(8 + paddedLength(data.length));
  bytes.set(encodeNumber(data.length));
  bytes.set(data, 8);
  return bytes;
}

async function* toAsync(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* chunks;
}
