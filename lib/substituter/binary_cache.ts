/**
 * A binary cache as Nix lays it out: `nix-cache-info`, `<hashpart>.narinfo`,
 * `nar/<filehash>.nar[.xz|.zst|...]` and `log/<drv>`, in a directory (`file:///dir`) or on an
 * HTTP(S) server (read with GET, written with PUT). URL parameters as in Nix: `compression`
 * (written NARs; default zstd), `secret-key` (a key file that signs what is written),
 * `priority` and `want-mass-query` (override the cache's own nix-cache-info).
 */

import { type Hash, storePathHashPart } from "../hashing/mod.ts";
import { type CacheBackend, CacheUnavailableError } from "./_backend.ts";
import { FileCacheBackend } from "./_file.ts";
import { HttpCacheBackend } from "./_http.ts";
import { type CacheInfo, parseCacheInfo, printCacheInfo } from "./cache_info.ts";
import {
  decompress,
  decompressNarWhole,
  parseCompressionMethod,
  parseWritableCompressionMethod,
  WHOLE_ZSTD_BYTES,
  type WritableCompressionMethod,
} from "./compression.ts";
import { type NarInfo, parseNarInfo, printNarInfo } from "./narinfo.ts";

export { CacheUnavailableError } from "./_backend.ts";

/** Priority of a cache whose nix-cache-info gives none (Nix's BinaryCacheStore default). */
export const DEFAULT_CACHE_PRIORITY = 50;

/** Content types Nix's HTTP binary cache store sends. */
export const CONTENT_TYPES = {
  cacheInfo: "text/x-nix-cache-info",
  narInfo: "text/x-nix-narinfo",
  nar: "application/x-nix-nar",
  log: "text/plain; charset=utf-8",
} as const;

/** What the URL's query says. */
export interface BinaryCacheParams {
  compression?: WritableCompressionMethod;
  /** `secret-key=FILE`: signs the narinfos written to this cache. */
  secretKeyFile?: string;
  priority?: number;
  wantMassQuery?: boolean;
}

/** Options of {@link BinaryCache.open}. */
export interface BinaryCacheOptions {
  /** The store dir of the paths the cache holds. */
  storeDir: string;
  /** How long an HTTP cache may take to answer, in milliseconds (default 5000). */
  connectTimeoutMs?: number;
}

/** One binary cache. */
export class BinaryCache {
  /** The URL without its query: names the cache in messages and in the narinfo disk cache. */
  readonly url: string;
  readonly params: BinaryCacheParams;
  readonly storeDir: string;
  readonly #backend: CacheBackend;
  #info: Promise<CacheInfo> | undefined;

  private constructor(
    url: string,
    params: BinaryCacheParams,
    storeDir: string,
    backend: CacheBackend,
  ) {
    this.url = url;
    this.params = params;
    this.storeDir = storeDir;
    this.#backend = backend;
  }

  /** Opens the cache at `url` (`file:///dir`, `http(s)://host/path`); nothing is read yet. */
  static open(url: string, options: BinaryCacheOptions): BinaryCache {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new TypeError(`Binary cache URL '${url}' is not a URL`);
    }
    const params = parseParams(parsed, url);
    parsed.search = "";
    parsed.hash = "";
    const base = parsed.href.replace(/\/+$/, "");
    let backend: CacheBackend;
    switch (parsed.protocol) {
      case "file:": {
        const dir = decodeURIComponent(parsed.pathname).replace(/\/+$/, "");
        if (parsed.host !== "" || dir === "") {
          throw new TypeError(`Binary cache URL '${url}' must be file:///absolute/dir`);
        }
        backend = new FileCacheBackend(dir);
        break;
      }
      case "http:":
      case "https:":
        backend = new HttpCacheBackend(`${base}/`, options.connectTimeoutMs ?? 5000);
        break;
      default:
        throw new TypeError(
          `Binary cache URL '${url}' has unsupported scheme '${parsed.protocol}' (expected file, http or https)`,
        );
    }
    return new BinaryCache(base, params, options.storeDir, backend);
  }

  /** Whether the cache is remote (its answers are worth keeping in the narinfo disk cache). */
  get remote(): boolean {
    return this.#backend instanceof HttpCacheBackend;
  }

  /**
   * The cache's nix-cache-info (read once), with the URL's `priority`/`want-mass-query` applied;
   * an absent file reads as empty. Throws when it names another store dir.
   */
  cacheInfo(signal?: AbortSignal): Promise<CacheInfo> {
    this.#info ??= this.#readCacheInfo(signal);
    return this.#info;
  }

  /** The cache's priority: lower is tried first. */
  async priority(signal?: AbortSignal): Promise<number> {
    return (await this.cacheInfo(signal)).priority ?? DEFAULT_CACHE_PRIORITY;
  }

  /** Writes nix-cache-info (`StoreDir`) unless the cache has one; checks it when it has. */
  async init(): Promise<void> {
    if (await this.#backend.exists("nix-cache-info")) {
      await this.cacheInfo();
      return;
    }
    const text = printCacheInfo({ storeDir: this.storeDir });
    await this.#backend.write("nix-cache-info", encode(text), CONTENT_TYPES.cacheInfo);
  }

  /** The text of `<hashpart>.narinfo`, or undefined when the cache has none. */
  async readNarInfoText(hashPart: string, signal?: AbortSignal): Promise<string | undefined> {
    const body = await this.#backend.readAll(`${hashPart}.narinfo`, signal);
    return body === undefined ? undefined : new TextDecoder().decode(body);
  }

  /**
   * Parses narinfo `text` found for `storePath`; throws a NarInfoSyntaxError when it is corrupt
   * and a RangeError when it describes another path.
   */
  parseNarInfo(text: string, storePath: string): NarInfo {
    const hashPart = storePathHashPart(this.storeDir, storePath);
    const info = parseNarInfo(text, this.storeDir, `${this.url}/${hashPart}.narinfo`);
    if (info.storePath !== storePath) {
      throw new RangeError(
        `Binary cache '${this.url}' answered for '${storePath}' with the narinfo of '${info.storePath}'`,
      );
    }
    return info;
  }

  /** The narinfo of `storePath`, or undefined when the cache does not have it. */
  async readNarInfo(storePath: string, signal?: AbortSignal): Promise<NarInfo | undefined> {
    const text = await this.readNarInfoText(storePathHashPart(this.storeDir, storePath), signal);
    return text === undefined ? undefined : this.parseNarInfo(text, storePath);
  }

  /** Whether the cache has a narinfo for `storePath`. */
  hasPath(storePath: string, signal?: AbortSignal): Promise<boolean> {
    return this.#backend.exists(`${storePathHashPart(this.storeDir, storePath)}.narinfo`, signal);
  }

  /**
   * The uncompressed NAR that `info` describes, streaming (with its sha256 when that was computed
   * on the way: a small zstd NAR is decoded and hashed on a worker thread); throws when the file
   * is missing.
   */
  async readNar(info: NarInfo, signal?: AbortSignal): Promise<FetchedNar> {
    const method = parseCompressionMethod(info.compression);
    const whole = method === "zstd" && info.narSize <= WHOLE_ZSTD_BYTES;
    const body = whole
      ? await this.#backend.readAll(info.url, signal)
      : await this.#backend.read(info.url, signal);
    if (body === undefined) {
      throw new RangeError(
        `Binary cache '${this.url}' has a narinfo for '${info.storePath}' but not its NAR '${info.url}'`,
      );
    }
    if (!(body instanceof Uint8Array)) return { nar: decompress(method, body) };
    const { nar, narHash } = await decompressNarWhole(body, info.narSize);
    return { nar: ReadableStream.from([nar]), narHash };
  }

  /** The build log of `drvPath`, or undefined. */
  readLog(drvPath: string, signal?: AbortSignal): Promise<ReadableStream<Uint8Array> | undefined> {
    return this.#backend.read(`log/${baseName(drvPath)}`, signal);
  }

  async writeNarInfo(info: NarInfo): Promise<void> {
    const name = `${storePathHashPart(this.storeDir, info.storePath)}.narinfo`;
    await this.#backend.write(name, encode(printNarInfo(info)), CONTENT_TYPES.narInfo);
  }

  /** Whether the cache has file `name` (a NAR's URL). */
  hasFile(name: string): Promise<boolean> {
    return this.#backend.exists(name);
  }

  /** A local file name to stage a compressed NAR in before {@link uploadNar}. */
  stagingPath(): string {
    return this.#backend.stagingPath();
  }

  /** Moves or sends the staged file to `url` (`nar/...`); the staged file is gone afterwards. */
  uploadNar(url: string, staged: string): Promise<void> {
    return this.#backend.upload(url, staged, CONTENT_TYPES.nar);
  }

  async #readCacheInfo(signal?: AbortSignal): Promise<CacheInfo> {
    const body = await this.#backend.read("nix-cache-info", signal);
    const info = body === undefined
      ? {}
      : parseCacheInfo(await new Response(body).text(), `${this.url}/nix-cache-info`);
    if (info.storeDir !== undefined && info.storeDir !== this.storeDir) {
      throw new RangeError(
        `Binary cache '${this.url}' is for store dir '${info.storeDir}', not '${this.storeDir}'`,
      );
    }
    if (this.params.priority !== undefined) info.priority = this.params.priority;
    if (this.params.wantMassQuery !== undefined) info.wantMassQuery = this.params.wantMassQuery;
    return info;
  }
}

/** Whether `e` says the cache itself is unreachable (rather than a file being bad). */
export function isCacheUnavailable(e: unknown): e is CacheUnavailableError {
  return e instanceof CacheUnavailableError;
}

/** A NAR read from a cache. */
export interface FetchedNar {
  nar: ReadableStream<Uint8Array>;
  /** The sha256 of exactly the bytes of `nar`, where it was computed while decoding. */
  narHash?: Hash;
}

function parseParams(url: URL, whole: string): BinaryCacheParams {
  const params: BinaryCacheParams = {};
  for (const [name, value] of url.searchParams) {
    switch (name) {
      case "compression":
        params.compression = parseWritableCompressionMethod(value);
        break;
      case "secret-key":
        params.secretKeyFile = value;
        break;
      case "priority":
        if (!/^-?[0-9]+$/.test(value)) {
          throw new TypeError(
            `Binary cache URL '${whole}' has priority '${value}', not an integer`,
          );
        }
        params.priority = Number(value);
        break;
      case "want-mass-query":
        params.wantMassQuery = value === "true" || value === "1";
        break;
      default:
        throw new TypeError(`Binary cache URL '${whole}' has unknown parameter '${name}'`);
    }
  }
  return params;
}

function encode(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text);
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}
