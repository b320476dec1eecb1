/**
 * Per-path exclusive locks between processes, as Nix's PathLocks: one lock file per store path
 * under a lock dir, held with `flock` (`Deno.FsFile.lock(true)`). A holder deletes its lock file
 * on release and marks it stale (one byte written) first, so a waiter that wakes up on a deleted
 * file notices and locks the new one instead.
 */

import { basename, join } from "node:path";

/** Locks held together; `unlock()` (or `using`) releases them all. */
export class PathLocks {
  readonly #held: { file: Deno.FsFile; lockPath: string }[];

  constructor(held: { file: Deno.FsFile; lockPath: string }[]) {
    this.#held = held;
  }

  unlock(): void {
    for (const { file, lockPath } of this.#held.splice(0).reverse()) {
      try {
        Deno.removeSync(lockPath);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      file.writeSync(new Uint8Array([0x64])); // "d": stale, whoever waits on it must retry
      file.close(); // closing drops the flock
    }
  }

  [Symbol.dispose](): void {
    this.unlock();
  }
}

/**
 * Takes an exclusive lock for each of `paths` (store paths; the lock file is named after the base
 * name) in sorted order, so two callers with overlapping sets never deadlock. Waits as long as
 * another holder keeps a lock. Not reentrant: locking a path this process already holds waits
 * forever.
 */
export async function lockPaths(lockDir: string, paths: Iterable<string>): Promise<PathLocks> {
  Deno.mkdirSync(lockDir, { recursive: true });
  const names = [...new Set([...paths].map((p) => basename(p)))].sort();
  const held: { file: Deno.FsFile; lockPath: string }[] = [];
  try {
    for (const name of names) {
      const lockPath = join(lockDir, `${name}.lock`);
      held.push({ file: await lockFile(lockPath), lockPath });
    }
  } catch (e) {
    new PathLocks(held).unlock();
    throw e;
  }
  return new PathLocks(held);
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
