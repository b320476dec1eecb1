/**
 * The store's file-system helpers: temporary names inside the physical store dir
 * (`.kiln-tmp-<pid>-<n>-<name>`), where new paths are written before they are renamed into place,
 * and removal of such half-written leftovers; whether a path exists, `lutimes`, and removal of a
 * tree.
 */

import { join } from "node:path";
import { AT_FDCWD, AT_SYMLINK_NOFOLLOW, cString, errno, loadLibc } from "../sys/mod.ts";

const TEMP_PREFIX = ".kiln-tmp-";
let counter = 0;

/** A fresh temporary path in `dir` for a store path named `name`; nothing is created. */
export function makeTempPath(dir: string, name: string): string {
  return join(dir, `${TEMP_PREFIX}${Deno.pid}-${counter++}-${name}`);
}

/**
 * Removes the temporaries in `dir` left by processes that no longer run (a crash or kill -9
 * mid-way). Returns how many were removed.
 */
export function removeStaleTemps(dir: string): number {
  let removed = 0;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
  for (const entry of entries) {
    if (!entry.name.startsWith(TEMP_PREFIX)) continue;
    const pid = Number(entry.name.slice(TEMP_PREFIX.length).split("-")[0]);
    if (!Number.isInteger(pid) || isProcessAlive(pid)) continue;
    removeTree(join(dir, entry.name));
    removed++;
  }
  return removed;
}

/** Whether process `pid` exists; assumes it does where /proc cannot tell. */
function isProcessAlive(pid: number): boolean {
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) return true;
    return !pathExists("/proc/self");
  }
}

const ENOENT = 2;
const statxBuffer = new Uint8Array(256);

/** Whether anything (a dangling symlink too) is at `path`. */
export function pathExists(path: string): boolean {
  // Through libc where it can: Deno's lstat reports absence by throwing, which costs ~20 us.
  const libc = loadLibc();
  if (libc) {
    const c = cString(path);
    if (libc.symbols.statx(AT_FDCWD, c, AT_SYMLINK_NOFOLLOW, 0, statxBuffer) === 0) return true;
    if (errno(libc) === ENOENT) return false;
  }
  try {
    Deno.lstatSync(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

const timespecs = new BigInt64Array(4);

/**
 * Sets the access and modification times (seconds since the epoch) of `path`, of a symlink
 * itself rather than its target: through libc where it can, else `node:fs`'s `lutimesSync`,
 * loaded only then (importing `node:fs` costs every kiln command ~10 ms of start-up).
 */
export function lutimes(path: string, atime: number, mtime: number): void {
  const libc = loadLibc();
  if (libc) {
    timespecs.set([BigInt(Math.floor(atime)), 0n, BigInt(Math.floor(mtime)), 0n]);
    if (libc.symbols.utimensat(AT_FDCWD, cString(path), timespecs, AT_SYMLINK_NOFOLLOW) === 0) {
      return;
    }
  }
  nodeFs().lutimesSync(path, atime, mtime); // and its error, if libc failed
}

function nodeFs(): typeof import("node:fs") {
  // deno-lint-ignore no-process-global -- the synchronous way to load a built-in module lazily
  return process.getBuiltinModule("node:fs");
}

/** Deletes `path` (file, symlink or tree, read-only or not); nothing when it does not exist. */
export function removeTree(path: string): void {
  if (!pathExists(path)) return;
  try {
    Deno.removeSync(path, { recursive: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    if (!(e instanceof Deno.errors.PermissionDenied)) throw e;
    makeDirsWritable(path); // store trees are read-only: a non-root user must open them up first
    Deno.removeSync(path, { recursive: true });
  }
}

function makeDirsWritable(dir: string): void {
  if (!Deno.lstatSync(dir).isDirectory) return;
  Deno.chmodSync(dir, 0o755);
  for (const entry of Deno.readDirSync(dir)) {
    if (entry.isDirectory) makeDirsWritable(join(dir, entry.name));
  }
}
