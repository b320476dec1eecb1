/**
 * Per-path exclusive locks between processes, as Nix's PathLocks. Where libc can be called, every
 * path of a lock dir shares one file, `paths.lock`, and a lock is an open file description lock
 * (`F_OFD_SETLK`) on one byte of it, chosen by a 62-bit hash of the path's base name: taking and
 * releasing a lock then creates and deletes no file, which matters where allocating an inode is
 * slow (ext4 without a journal scans past recently freed inodes: about 1 ms a file after a large
 * delete). Elsewhere there is one lock file per path held with `flock`, as Nix has: its holder
 * deletes it on release and marks it stale (one byte written) first, so that a waiter that wakes
 * up on a deleted file notices and locks the new one instead. One store must be locked one way
 * only, which holds as long as every kiln using it may call libc, or none.
 */

import { basename, join } from "node:path";
import { cString, errno, type Libc, loadLibc } from "../sys/mod.ts";
import { InternalError } from "../sys/mod.ts";

/** Locks held together; `unlock()` (or `using`) releases them all. */
export interface PathLocks extends Disposable {
  unlock(): void;
}

/** How locks are held: byte ranges of one file (needs libc), or a file per path. */
export type LockKind = "ranges" | "files";

/**
 * Takes an exclusive lock for each of `paths` (store paths; a lock is named after the base name)
 * in sorted order, so two callers with overlapping sets never deadlock. Waits as long as another
 * holder keeps a lock. Not reentrant: locking a path this process already holds waits forever.
 * `kind` is for tests: a store must always be locked the same way.
 */
export async function lockPaths(
  lockDir: string,
  paths: Iterable<string>,
  kind: LockKind = loadLibc() ? "ranges" : "files",
): Promise<PathLocks> {
  const names = [...new Set([...paths].map((p) => basename(p)))].sort();
  const libc = kind === "ranges" ? loadLibc() : undefined;
  if (libc) return await lockRanges(libc, lockDir, names);
  Deno.mkdirSync(lockDir, { recursive: true });
  return await lockFiles(lockDir, names);
}

const O_RDWR_CREAT_CLOEXEC = 0o2 | 0o100 | 0o2000000;
const F_OFD_SETLK = 37;
const F_OFD_SETLKW = 38;
const F_WRLCK = 1;
const ENOENT = 2;
const EINTR = 4;
const EAGAIN = 11;
const EACCES = 13;

/** The byte ranges of `names` in the lock dir's `paths.lock`, on an open file description. */
async function lockRanges(libc: Libc, lockDir: string, names: string[]): Promise<PathLocks> {
  const fd = openLockFile(libc, lockDir);
  let held = true;
  const locks: PathLocks = {
    unlock() {
      if (held) libc.symbols.close(fd); // closing drops every lock of the description
      held = false;
    },
    [Symbol.dispose]: () => locks.unlock(),
  };
  try {
    for (const name of names) {
      // struct flock: l_type, l_whence (SEEK_SET), l_start, l_len, l_pid (0 for OFD locks)
      const flock = new Uint8Array(32);
      const view = new DataView(flock.buffer);
      view.setInt16(0, F_WRLCK, true);
      view.setBigInt64(8, rangeOf(name), true);
      view.setBigInt64(16, 1n, true);
      // Uncontended (the usual case) without the round trip through a blocking thread.
      while (libc.symbols.fcntlLock(fd, F_OFD_SETLK, flock) !== 0) {
        const why = errno(libc);
        if (why !== EAGAIN && why !== EACCES && why !== EINTR) {
          throw new Deno.errors.PermissionDenied(
            `Cannot lock '${name}' in '${join(lockDir, "paths.lock")}' (errno ${why})`,
          );
        }
        if (why !== EINTR && (await libc.symbols.fcntlLockWait(fd, F_OFD_SETLKW, flock)) === 0) {
          break;
        }
      }
    }
  } catch (e) {
    locks.unlock();
    throw e;
  }
  return locks;
}

/** `paths.lock` C paths by lock dir: a build takes a lock or two, and a chain has many builds. */
const lockFilePaths = new Map<string, Uint8Array<ArrayBuffer>>();

/**
 * A new open file description of `paths.lock` in `lockDir` (each call has its own: its locks
 * exclude this process's others), making the file, and the directory where it is missing.
 */
function openLockFile(libc: Libc, lockDir: string): number {
  const file = join(lockDir, "paths.lock");
  let c = lockFilePaths.get(lockDir);
  if (c === undefined) lockFilePaths.set(lockDir, c = cString(file));
  let fd = libc.symbols.openCreate(c, O_RDWR_CREAT_CLOEXEC, 0o644);
  if (fd < 0 && errno(libc) === ENOENT) {
    Deno.mkdirSync(lockDir, { recursive: true });
    fd = libc.symbols.openCreate(c, O_RDWR_CREAT_CLOEXEC, 0o644);
  }
  if (fd < 0) {
    Deno.openSync(file, { read: true, write: true, create: true }).close(); // throws Deno's error
    throw new InternalError(`cannot open '${file}' through libc`);
  }
  return fd;
}

/** Where the lock of `name` lies: a 62-bit FNV-1a hash of it (two 32-bit ones, seeded apart). */
function rangeOf(name: string): bigint {
  let high = 0x811c9dc5;
  let low = 0x050c5d1f;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    high = Math.imul(high ^ c, 0x01000193);
    low = Math.imul(low ^ c, 0x01000193);
  }
  return (BigInt((high >>> 0) & 0x3fffffff) << 32n) | BigInt(low >>> 0);
}

/** A lock file per name, held with flock (where libc cannot be called). */
async function lockFiles(lockDir: string, names: string[]): Promise<PathLocks> {
  const held: { file: Deno.FsFile; lockPath: string }[] = [];
  const locks: PathLocks = {
    unlock() {
      for (const { file, lockPath } of held.splice(0).reverse()) {
        try {
          Deno.removeSync(lockPath);
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        }
        file.writeSync(new Uint8Array([0x64])); // "d": stale, whoever waits on it must retry
        file.close(); // closing drops the flock
      }
    },
    [Symbol.dispose]: () => locks.unlock(),
  };
  try {
    for (const name of names) {
      const lockPath = join(lockDir, `${name}.lock`);
      held.push({ file: await lockFile(lockPath), lockPath });
    }
  } catch (e) {
    locks.unlock();
    throw e;
  }
  return locks;
}

async function lockFile(lockPath: string): Promise<Deno.FsFile> {
  for (;;) {
    // Async: creating the file can take milliseconds, which other goals may use.
    const file = await Deno.open(lockPath, { read: true, write: true, create: true });
    try {
      // Uncontended (the usual case) without the round trip through a blocking thread.
      if (!file.tryLockSync(true)) await file.lock(true);
      if (file.statSync().size === 0) return file;
    } catch (e) {
      file.close();
      throw e;
    }
    file.close(); // the previous holder deleted this file: lock the one now at lockPath
  }
}
