/**
 * Copies store paths into a binary cache (`nix copy --to`): each NAR is dumped, hashed (to catch a
 * store path changed on disk), compressed and hashed again in one pass into a staging file, then
 * moved or uploaded to `nar/<filehash>.nar<ext>`; its narinfo, signed with the given keys, is
 * written only after the narinfos of its references, so a reader never finds a narinfo whose
 * closure is incomplete. Paths whose narinfo the cache already has are skipped. A NAR small
 * enough for zstd in one piece is dumped into one buffer and compressed, hashed (both sides) and
 * written to the staging file on a worker thread.
 */

import { createHasher, type Hash } from "../hashing/mod.ts";
import { dumpPath, dumpPathBytes, type LocalStore, removeTree } from "../store/mod.ts";
import type { BinaryCache } from "./binary_cache.ts";
import {
  compress,
  compressionExtension,
  compressNarWhole,
  DEFAULT_COMPRESSION,
  holdCodecWorkers,
  WHOLE_ZSTD_BYTES,
  type WritableCompressionMethod,
} from "./compression.ts";
import type { NarInfo } from "./narinfo.ts";
import { fingerprintPath, type SecretKey, signFingerprint } from "./signing.ts";
import { createLimiter } from "./_limit.ts";
import { giveBuffer, takeBuffer } from "./_buffers.ts";

/** Options of {@link copyToBinaryCache}. */
export interface CopyToCacheOptions {
  /** Copy the closures of the paths (default true), or only the paths themselves. */
  recursive?: boolean;
  /** Default: the URL's `compression`, else zstd. */
  compression?: WritableCompressionMethod;
  /** Method-specific level (see `compress`). */
  level?: number;
  /** Keys whose signatures are added to each narinfo written. */
  secretKeys?: readonly SecretKey[];
  /** NARs compressed and uploaded at once (default 8). */
  jobs?: number;
  /** Called as each path's narinfo is written. */
  onCopied?: (path: string) => void;
}

/** What a copy did. */
export interface CopyReport {
  copied: string[];
  /** Paths the cache had already. */
  skipped: string[];
}

/** Narinfo existence checks in flight at once. */
const QUERY_JOBS = 32;

/** Copies `paths` (valid store paths; their closures unless `recursive` is false) to `cache`. */
export async function copyToBinaryCache(
  store: LocalStore,
  cache: BinaryCache,
  paths: readonly string[],
  options: CopyToCacheOptions = {},
): Promise<CopyReport> {
  if (cache.storeDir !== store.storeDir) {
    throw new RangeError(
      `Binary cache '${cache.url}' is for store dir '${cache.storeDir}', not '${store.storeDir}'`,
    );
  }
  for (const path of paths) {
    if (!store.isValidPath(path)) throw new RangeError(`Path '${path}' is not valid`);
  }
  using _workers = holdCodecWorkers();
  const wanted = options.recursive === false ? [...new Set(paths)] : store.computeClosure(paths);
  await cache.init();
  const query = createLimiter(QUERY_JOBS);
  const present = await Promise.all(wanted.map((path) => query(() => cache.hasPath(path))));
  const skipped = wanted.filter((_, i) => present[i]);
  const todo = new Set(wanted.filter((_, i) => !present[i]));
  const method = options.compression ?? cache.params.compression ?? DEFAULT_COMPRESSION;
  const limit = createLimiter(options.jobs ?? 8);
  const done = new Map<string, Promise<void>>();
  const copyOne = (path: string): Promise<void> => {
    let promise = done.get(path);
    if (promise === undefined) {
      promise = (async () => {
        const info = await limit(() => uploadNar(store, cache, path, { ...options, method }));
        // References first: a narinfo appears only once its whole closure is in the cache.
        await Promise.all(
          info.references.filter((r) => r !== path && todo.has(r)).map(copyOne),
        );
        await cache.writeNarInfo(info);
        options.onCopied?.(path);
      })();
      done.set(path, promise);
    }
    return promise;
  };
  await Promise.all([...todo].map(copyOne));
  return { copied: [...todo], skipped };
}

/** Compresses and uploads the NAR of `path`; returns its narinfo, signed. */
async function uploadNar(
  store: LocalStore,
  cache: BinaryCache,
  path: string,
  options: CopyToCacheOptions & { method: WritableCompressionMethod },
): Promise<NarInfo> {
  const info = store.queryPathInfo(path);
  if (info === undefined) throw new RangeError(`Path '${path}' is not valid`);
  const staged = cache.stagingPath();
  let written: Staged;
  try {
    written = options.method === "zstd" && info.narSize <= WHOLE_ZSTD_BYTES
      ? await stageWhole(store.physicalPath(path), info.narSize, staged, options)
      : await stageStreaming(store.physicalPath(path), staged, options);
  } catch (e) {
    removeTree(staged);
    throw e;
  }
  const { file, narHash, narSize } = written;
  const url = `nar/${file.hash.toString("nix32")}.nar${compressionExtension(options.method)}`;
  if (!narHash.equals(info.narHash) || narSize !== info.narSize) {
    Deno.removeSync(staged);
    throw new RangeError(
      `Path '${path}' was modified: its NAR hash is ${narHash.toString("sri")}, the store records ${
        info.narHash.toString("sri")
      }`,
    );
  }
  if (await cache.hasFile(url)) Deno.removeSync(staged);
  else await cache.uploadNar(url, staged);
  const fingerprint = fingerprintPath(path, info);
  const sigs = [...info.signatures];
  for (const key of options.secretKeys ?? []) sigs.push(signFingerprint(key, fingerprint));
  return {
    storePath: path,
    url,
    compression: options.method,
    fileHash: file.hash,
    fileSize: file.size,
    narHash: info.narHash,
    narSize: info.narSize,
    references: info.references,
    ...(info.deriver && { deriver: info.deriver }),
    sigs: [...new Set(sigs)].sort(),
    ...(info.ca && { ca: info.ca }),
  };
}

/** A NAR written compressed to the staging file: the file's and the NAR's hash and size. */
interface Staged {
  file: { hash: Hash; size: number };
  narHash: Hash;
  narSize: number;
}

/**
 * Stages the NAR of the tree at `physical` (of about `narSize` bytes) through a worker, in a
 * spare buffer that the worker gives back.
 */
async function stageWhole(
  physical: string,
  narSize: number,
  staged: string,
  options: { level?: number },
): Promise<Staged> {
  const nar = dumpPathBytes(physical, narSize, takeBuffer(narSize));
  const size = nar.length;
  const whole = await compressNarWhole(nar, { level: options.level, writeTo: staged });
  giveBuffer(whole.buffer);
  return {
    file: { hash: whole.fileHash, size: whole.size },
    narHash: whole.narHash,
    narSize: size,
  };
}

/** Stages the NAR of the tree at `physical`, streaming it through `options.method`. */
async function stageStreaming(
  physical: string,
  staged: string,
  options: { method: WritableCompressionMethod; level?: number },
): Promise<Staged> {
  const narHasher = createHasher("sha256");
  let narSize = 0;
  const nar = dumpPath(physical).pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        narHasher.update(chunk);
        narSize += chunk.length;
        controller.enqueue(chunk);
      },
    }),
  );
  const file = await writeHashed(compress(options.method, nar, { level: options.level }), staged);
  return { file, narHash: narHasher.digest(), narSize };
}

/** Writes `stream` to a new file `dest`, returning the sha256 and size of what was written. */
async function writeHashed(
  stream: ReadableStream<Uint8Array>,
  dest: string,
): Promise<{ hash: Hash; size: number }> {
  const hasher = createHasher("sha256");
  let size = 0;
  using file = Deno.openSync(dest, { write: true, createNew: true, mode: 0o644 });
  for await (const chunk of stream) {
    hasher.update(chunk);
    size += chunk.length;
    for (let off = 0; off < chunk.length;) off += file.writeSync(chunk.subarray(off));
  }
  return { hash: hasher.digest(), size };
}
