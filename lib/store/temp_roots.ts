/**
 * Temporary roots, as Nix's: a process that adds, substitutes or builds paths names them in
 * `<state>/temproots/<pid>` (each ended by `\0`), a file it holds an exclusive lock on for as
 * long as it lives. Adding a root takes a shared lock on `<state>/gc.lock`, which a collector
 * holds exclusively for the whole collection: a root is in its file before the collector reads
 * the files, or is added once the collection is over. A file whose lock the collector can take
 * belongs to a process that is gone, and is deleted.
 */

import { join } from "node:path";
import { concatBytes } from "../hashing/mod.ts";

const encoder = new TextEncoder();

/** This process's file in a state dir, shared by every store opened on that dir. */
interface ProcessFile {
  file: Deno.FsFile;
  added: Set<string>;
  /** Open TempRoots that have added to it. */
  users: number;
}

/** By state dir: a second open file of the same process would wait for the first's lock. */
const processFiles = new Map<string, ProcessFile>();

/** This process's temporary roots in one state dir. */
export class TempRoots {
  readonly #stateDir: string;
  #joined = false;

  constructor(stateDir: string) {
    this.#stateDir = stateDir;
  }

  /** Roots `paths` until {@link close}; waits while a collection runs. */
  async add(paths: Iterable<string>): Promise<void> {
    let shared = processFiles.get(this.#stateDir);
    const fresh = [...new Set(paths)].filter((p) => !shared?.added.has(p));
    if (fresh.length === 0) return;
    if (shared === undefined) {
      shared = { file: openProcessFile(this.#stateDir), added: new Set(), users: 0 };
      processFiles.set(this.#stateDir, shared);
    }
    if (!this.#joined) shared.users++;
    this.#joined = true;
    using _gc = await lockGc(this.#stateDir, false);
    const bytes = encoder.encode(fresh.map((p) => `${p}\0`).join(""));
    for (let off = 0; off < bytes.length;) off += shared.file.writeSync(bytes.subarray(off));
    for (const path of fresh) shared.added.add(path);
  }

  /** Drops the roots once no other store of this process uses the file: deletes it, unlocked. */
  close(): void {
    const shared = processFiles.get(this.#stateDir);
    if (!this.#joined || shared === undefined) return;
    this.#joined = false;
    if (--shared.users > 0) return;
    processFiles.delete(this.#stateDir);
    removeIfThere(tempRootsFile(this.#stateDir, Deno.pid));
    shared.file.close();
  }
}

/** Creates and locks this process's file; one a collector deleted meanwhile is made again. */
function openProcessFile(stateDir: string): Deno.FsFile {
  const path = tempRootsFile(stateDir, Deno.pid);
  Deno.mkdirSync(join(stateDir, "temproots"), { recursive: true });
  for (;;) {
    const file = Deno.openSync(path, { read: true, write: true, create: true });
    file.lockSync(true); // a collector holds it only while it deletes a stale file
    const held = file.statSync();
    let current: Deno.FileInfo | undefined;
    try {
      current = Deno.statSync(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (current !== undefined && current.ino === held.ino && current.dev === held.dev) {
      file.truncateSync(0); // a dead process with the same pid may have left it
      return file;
    }
    file.close();
  }
}

/** `<state>/temproots/<pid>`. */
function tempRootsFile(stateDir: string, pid: number): string {
  return join(stateDir, "temproots", String(pid));
}

/**
 * Takes `<state>/gc.lock`: exclusive for a collection, shared to add temporary roots. Waits
 * while another holder's lock excludes it.
 */
export async function lockGc(stateDir: string, exclusive: boolean): Promise<Disposable> {
  // Synchronous: opening costs microseconds, a round trip through a blocking thread more.
  const file = Deno.openSync(join(stateDir, "gc.lock"), { read: true, write: true, create: true });
  try {
    if (!file.tryLockSync(exclusive)) await file.lock(exclusive);
  } catch (e) {
    file.close();
    throw e;
  }
  return { [Symbol.dispose]: () => file.close() };
}

/**
 * The temporary roots of the live processes on `stateDir`: store path -> pids. The files of
 * processes that are gone are deleted. Call it holding the GC lock exclusively.
 */
export function readTempRoots(stateDir: string): Map<string, number[]> {
  const roots = new Map<string, number[]>();
  const dir = join(stateDir, "temproots");
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return roots;
    throw e;
  }
  for (const entry of entries) {
    const pid = Number(entry.name);
    if (!entry.isFile || !Number.isInteger(pid)) continue;
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(join(dir, entry.name), { read: true, write: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue; // its process closed it just now
      throw e;
    }
    try {
      if (file.tryLockSync(true)) {
        removeIfThere(join(dir, entry.name)); // stale: its process is gone
        continue;
      }
      for (const path of readAll(file).split("\0").filter((p) => p !== "")) {
        roots.set(path, [...(roots.get(path) ?? []), pid]);
      }
    } finally {
      file.close();
    }
  }
  return roots;
}

function removeIfThere(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

function readAll(file: Deno.FsFile): string {
  const chunks: Uint8Array[] = [];
  for (;;) {
    const chunk = new Uint8Array(65536);
    const n = file.readSync(chunk);
    if (n === null || n === 0) break;
    chunks.push(chunk.subarray(0, n));
  }
  return new TextDecoder().decode(concatBytes(chunks));
}
