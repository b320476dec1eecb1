/**
 * Adds a store path from its NAR, as Nix's `LocalStore::addToStore(info, source)`: the NAR is
 * unpacked, hashed and counted in one pass into a temporary name in the physical store dir, and
 * only when its hash and size match `info` is it renamed into place and registered with `info`'s
 * metadata. Anything that fails leaves the store as it was.
 */

import type { Hash } from "../hashing/mod.ts";
import { makeTempPath, pathExists, removeTree } from "./_fs.ts";
import type { PathInfo } from "./metadata_db.ts";
import { restoreNar } from "./nar_fs.ts";

/** The NAR is not the one `info` describes: another hash, or another size. */
export class NarMismatchError extends RangeError {
  override name = "NarMismatchError";
}

/** What {@link importNar} needs of the local store. */
export interface NarImportTarget {
  readonly storeDir: string;
  isValidPath(path: string): boolean;
  physicalPath(path: string): string;
  withPathLock<T>(paths: string[], fn: () => Promise<T>): Promise<T>;
  registerValidPaths(infos: PathInfo[]): void;
  /** Keeps paths from the garbage collector while the process lives (temp_roots.ts). */
  addTempRoots?(paths: Iterable<string>): Promise<void>;
}

/**
 * Unpacks `nar` as `info.path` and registers it with `info`, unless the path is valid already
 * (then returns false and reads nothing); with `repair` a valid path's files are replaced. Every reference but the path itself must be valid.
 * Throws NarMismatchError when the NAR's hash or size differs from `info` (reading stops as soon
 * as it is longer), and passes on the stream's own errors (truncation, corrupt data, abort) and
 * those of `check`.
 */
export async function importNar(
  store: NarImportTarget,
  info: PathInfo,
  options: {
    /** The NAR, and its sha256 when the bytes were hashed on their way (not hashed again). */
    nar: () => Promise<{ nar: AsyncIterable<Uint8Array>; narHash?: Hash }>;
    signal?: AbortSignal;
    /** Looks at the unpacked tree (a temporary path) once its NAR matched; throws to refuse it. */
    check?: (path: string) => void;
    /** Replace the files of a valid path (corrupt or missing) with the NAR's. */
    repair?: boolean;
  },
): Promise<boolean> {
  await store.addTempRoots?.([info.path]);
  if (!options.repair && store.isValidPath(info.path)) return false;
  for (const reference of info.references) {
    if (reference !== info.path && !store.isValidPath(reference)) {
      throw new RangeError(`Cannot add '${info.path}': its reference '${reference}' is not valid`);
    }
  }
  return await store.withPathLock([info.path], async () => {
    const valid = store.isValidPath(info.path);
    if (valid && !options.repair) return false;
    const dest = store.physicalPath(info.path);
    const temp = makeTempPath(store.physicalPath(store.storeDir), baseName(info.path));
    try {
      const fetched = await options.nar();
      const nar = limitNar(fetched.nar, info, options.signal);
      const got = await restoreNar(nar, temp, {
        canonicalise: true,
        narHash: fetched.narHash,
        inPlace: true, // temp is ours already
      });
      if (!got.narHash.equals(info.narHash)) {
        throw new NarMismatchError(
          `NAR hash mismatch for '${info.path}': expected ${info.narHash.toString("sri")}, got ${
            got.narHash.toString("sri")
          }`,
        );
      }
      if (got.narSize !== info.narSize) {
        throw new NarMismatchError(
          `NAR size mismatch for '${info.path}': expected ${info.narSize}, got ${got.narSize}`,
        );
      }
      options.check?.(temp);
      if (valid) {
        swapIntoPlace(temp, dest, makeTempPath(store.physicalPath(store.storeDir), "repaired"));
        store.registerValidPaths([info]);
        return true;
      }
      removeTree(dest); // an invalid path's file is garbage left by a crash
      Deno.renameSync(temp, dest);
      try {
        store.registerValidPaths([info]);
      } catch (e) {
        removeTree(dest);
        throw e;
      }
      return true;
    } finally {
      removeTree(temp);
    }
  });
}

/** Renames `temp` to `dest`, moving what is at `dest` (if anything) to `old` first, then removing it. */
function swapIntoPlace(temp: string, dest: string, old: string): void {
  if (pathExists(dest)) Deno.renameSync(dest, old);
  Deno.renameSync(temp, dest);
  removeTree(old);
}

/** Passes `nar` on, failing once it is longer than `info.narSize` or `signal` aborts. */
async function* limitNar(
  nar: AsyncIterable<Uint8Array>,
  info: PathInfo,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  let size = 0;
  for await (const chunk of nar) {
    signal?.throwIfAborted();
    size += chunk.length;
    if (size > info.narSize) {
      // What fits goes first: the NAR parser must see this error, not a truncated NAR.
      yield chunk.subarray(0, chunk.length - (size - info.narSize));
      throw new NarMismatchError(
        `NAR size mismatch for '${info.path}': expected ${info.narSize}, got more`,
      );
    }
    yield chunk;
  }
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}
