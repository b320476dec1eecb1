/**
 * The local store served as a binary cache over HTTP, as `nix-serve` does: `/nix-cache-info`,
 * `/<hashpart>.narinfo` (signed on the fly), `/nar/<hashpart>-<narhash>.nar[.zst|...]` (the NAR
 * dumped from the store as it is sent, compressed on the fly when asked; uncompressed by
 * default, which is fastest on a local network) and `/log/<drv>`. The NAR's URL carries the
 * path's hash part, so the server finds the path again, and its NAR hash, so a URL from an older
 * narinfo never yields other contents.
 */

import { HASH_PART_LENGTH, isNixBase32Digit, parseHash } from "../hashing/mod.ts";
import type { LocalStore, PathInfo } from "../store/mod.ts";
import { CONTENT_TYPES } from "./binary_cache.ts";
import { printCacheInfo } from "./cache_info.ts";
import { compress, compressionExtension, type WritableCompressionMethod } from "./compression.ts";
import { printNarInfo } from "./narinfo.ts";
import { fingerprintPath, type SecretKey, signFingerprint } from "./signing.ts";

/** Options of {@link createCacheHandler}. */
export interface CacheServerOptions {
  /** Keys whose signatures are added to every narinfo served. */
  secretKeys?: readonly SecretKey[];
  /** `Priority` in nix-cache-info (default 30, as nix-serve). */
  priority?: number;
  /** How NARs are sent (default none). */
  compression?: WritableCompressionMethod;
  /** The build log of a `.drv` path, if there is one. */
  readLog?: (drvPath: string) => ReadableStream<Uint8Array> | undefined;
}

/** A request handler serving `store` as a binary cache (for `Deno.serve`). */
export function createCacheHandler(
  store: LocalStore,
  options: CacheServerOptions = {},
): (request: Request) => Response {
  const compression = options.compression ?? "none";
  const ext = `.nar${compressionExtension(compression)}`;
  const cacheInfo = printCacheInfo({
    storeDir: store.storeDir,
    wantMassQuery: true,
    priority: options.priority ?? 30,
  });
  return (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return text(405, "Method not allowed\n", { allow: "GET, HEAD" });
    }
    const head = request.method === "HEAD";
    let name: string;
    try {
      name = decodeURIComponent(new URL(request.url).pathname).slice(1);
    } catch {
      return notFound();
    }
    if (name === "nix-cache-info") {
      return reply(head, cacheInfo, CONTENT_TYPES.cacheInfo);
    }
    const narInfoMatch = /^([0-9a-z]+)\.narinfo$/.exec(name);
    if (narInfoMatch) {
      const info = findPath(store, narInfoMatch[1]);
      if (info === undefined) return notFound();
      return reply(head, narInfoOf(info, store, options, ext, compression), CONTENT_TYPES.narInfo);
    }
    const narMatch = /^nar\/([0-9a-z]+)-([0-9a-z]+)(\.nar.*)$/.exec(name);
    if (narMatch && narMatch[3] === ext) {
      const info = findPath(store, narMatch[1]);
      if (info === undefined || !sameNarHash(info, narMatch[2])) return notFound();
      const headers: Record<string, string> = { "content-type": CONTENT_TYPES.nar };
      if (compression === "none") headers["content-length"] = String(info.narSize);
      if (head) return new Response(null, { headers });
      const nar = store.narFromPath(info.path);
      return new Response(compress(compression, nar), { headers });
    }
    const logMatch = /^log\/([^/]+\.drv)$/.exec(name);
    if (logMatch && options.readLog) {
      const log = options.readLog(`${store.storeDir}/${logMatch[1]}`);
      if (log === undefined) return notFound();
      if (head) {
        log.cancel();
        return new Response(null, { headers: { "content-type": CONTENT_TYPES.log } });
      }
      return new Response(log, { headers: { "content-type": CONTENT_TYPES.log } });
    }
    return notFound();
  };
}

/** Options of {@link serveBinaryCache}. */
export interface ServeOptions extends CacheServerOptions {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  /** Aborting it stops the server. */
  signal?: AbortSignal;
}

/** A running server: where it listens, and a promise settled once it has stopped. */
export interface CacheServer {
  addr: Deno.NetAddr;
  finished: Promise<void>;
}

/** Serves `store` as a binary cache until `options.signal` aborts. */
export function serveBinaryCache(store: LocalStore, options: ServeOptions): CacheServer {
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    signal: options.signal,
    onListen: () => {},
  }, createCacheHandler(store, options));
  return { addr: server.addr, finished: server.finished };
}

function findPath(store: LocalStore, hashPart: string): PathInfo | undefined {
  if (hashPart.length !== HASH_PART_LENGTH) return undefined;
  for (let i = 0; i < hashPart.length; i++) {
    if (!isNixBase32Digit(hashPart.charCodeAt(i))) return undefined;
  }
  const path = store.queryPathFromHashPart(hashPart);
  return path === undefined ? undefined : store.queryPathInfo(path);
}

function sameNarHash(info: PathInfo, nix32: string): boolean {
  try {
    return parseHash(nix32, "sha256").equals(info.narHash);
  } catch {
    return false;
  }
}

function narInfoOf(
  info: PathInfo,
  store: LocalStore,
  options: CacheServerOptions,
  ext: string,
  compression: WritableCompressionMethod,
): string {
  const hashPart = info.path.slice(store.storeDir.length + 1, store.storeDir.length + 33);
  const fingerprint = fingerprintPath(info.path, info);
  const sigs = [...info.signatures];
  for (const key of options.secretKeys ?? []) sigs.push(signFingerprint(key, fingerprint));
  return printNarInfo({
    storePath: info.path,
    url: `nar/${hashPart}-${info.narHash.toString("nix32")}${ext}`,
    compression,
    narHash: info.narHash,
    narSize: info.narSize,
    references: info.references,
    ...(info.deriver && { deriver: info.deriver }),
    sigs,
    ...(info.ca && { ca: info.ca }),
  });
}

function reply(head: boolean, body: string, contentType: string): Response {
  return new Response(head ? null : body, { headers: { "content-type": contentType } });
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain", ...headers } });
}

function notFound(): Response {
  return text(404, "File not found.\n");
}
