/** How a binary cache's files are read and written: a directory (`file://`) or HTTP(S). */

import { InternalError } from "../sys/mod.ts";

/** The cache could not be reached or did not answer in time: a miss, and the cache is skipped. */
export class CacheUnavailableError extends Error {
  override name = "CacheUnavailableError";
}

/** The files of one binary cache, named relative to its root (`nix-cache-info`, `nar/x.nar`). */
export interface CacheBackend {
  /** The file's bytes as they come, or undefined when the cache has no such file. */
  read(name: string, signal?: AbortSignal): Promise<ReadableStream<Uint8Array> | undefined>;
  /** The file's bytes in one piece (for small files), or undefined when the cache has none. */
  readAll(name: string, signal?: AbortSignal): Promise<Uint8Array<ArrayBuffer> | undefined>;
  exists(name: string, signal?: AbortSignal): Promise<boolean>;
  /** Writes a small file whole. */
  write(name: string, body: Uint8Array<ArrayBuffer>, contentType: string): Promise<void>;
  /** A local file name where `upload` can take a file from cheaply (same file system). */
  stagingPath(): string;
  /** Moves (or sends, then removes) the local file `staged` to `name`. */
  upload(name: string, staged: string, contentType: string): Promise<void>;
}

/** Throws unless `name` is a relative name that stays inside the cache. */
export function checkFileName(name: string): void {
  if (name === "" || name.startsWith("/") || name.split("/").some((s) => s === ".." || s === "")) {
    throw new InternalError(`binary cache file name '${name}' leaves the cache`);
  }
}
