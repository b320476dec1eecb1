/**
 * File access for the NAR walker: `getdents64`/`statx`/`open`/`read`/`close` to read a tree, and creating a
 * file with its contents, mode and mtime, called straight from libc where Deno may load it (each
 * costs about half what Deno's fs op does, which matters across tens of thousands of small files),
 * else Deno's sync ops. Failures are re-done with Deno's op so that the error thrown is Deno's
 * usual one (NotFound, AlreadyExists, PermissionDenied, ...).
 */

import { AT_FDCWD, AT_SYMLINK_NOFOLLOW, type Libc, loadLibc } from "../sys/mod.ts";
import { InternalError } from "../sys/mod.ts";

/** What the walker needs of a file: its mode bits and size (symlinks not followed). */
export interface FileStat {
  mode: number;
  size: number;
}

/** A directory entry's type as the directory tells it: "other" for any other, or unknown. */
export type EntryKind = "file" | "directory" | "symlink" | "other";

/** A directory entry: its name, kind and, where known, inode number. */
export type DirEntry = [name: string, kind: EntryKind, inode?: number];

/** Stat, open, read and close, by path and by handle. Dispose of it when the walk ends. */
export interface FileIo extends Disposable {
  /**
   * The entries of the directory at `path` (without `.` and `..`), in no particular order, with
   * their inode numbers where the directory tells them (libc's `getdents64` does).
   */
  readDir(path: string): DirEntry[];
  lstat(path: string): FileStat;
  open(path: string): number;
  /** Reads into `into`; returns the number of bytes read, 0 at the end of the file. */
  read(handle: number, into: Uint8Array): number;
  close(handle: number): void;
  /**
   * Creates `path` (which must not exist) holding `data`, opened with `mode` (the umask applies),
   * and sets its mtime and atime to `mtime` when given.
   */
  createFile(path: string, data: Uint8Array, mode: number, mtime?: number): void;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const STATX_TYPE_MODE_SIZE = 0x1 | 0x2 | 0x200;
const O_RDONLY_CLOEXEC = 0o2000000;
const O_DIRECTORY = 0o200000;
const DT_DIR = 4;
const DT_REG = 8;
const DT_LNK = 10;
const O_CREATE_NEW = 0o1 | 0o100 | 0o200 | 0o2000000; // O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC

/** The fastest file access this process may use. */
export function openFileIo(): FileIo {
  const lib = loadLibc();
  return lib ? new _LibcIo(lib) : new _DenoIo();
}

class _DenoIo implements FileIo {
  readonly #files = new Map<number, Deno.FsFile>();
  #next = 0;

  readDir(path: string): DirEntry[] {
    return Array.from(Deno.readDirSync(path), (e) => [
      e.name,
      e.isFile ? "file" : e.isDirectory ? "directory" : e.isSymlink ? "symlink" : "other",
    ]);
  }

  lstat(path: string): FileStat {
    const info = Deno.lstatSync(path);
    return { mode: info.mode!, size: info.size };
  }

  open(path: string): number {
    this.#files.set(++this.#next, Deno.openSync(path));
    return this.#next;
  }

  read(handle: number, into: Uint8Array): number {
    return this.#files.get(handle)!.readSync(into) ?? 0;
  }

  close(handle: number): void {
    this.#files.get(handle)?.close();
    this.#files.delete(handle);
  }

  createFile(path: string, data: Uint8Array, mode: number, mtime?: number): void {
    using file = Deno.openSync(path, { write: true, createNew: true, mode });
    for (let off = 0; off < data.length;) off += file.writeSync(data.subarray(off));
    if (mtime !== undefined) file.utimeSync(mtime, mtime);
  }

  [Symbol.dispose](): void {
    for (const handle of this.#files.keys()) this.close(handle);
  }
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });

/** `bytes` with printable ASCII as it is and every other byte as `\xNN`. */
function escapeBytes(bytes: Uint8Array): string {
  return Array.from(
    bytes,
    (b) => b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`,
  ).join("");
}
const DIRENT_KINDS: Record<number, EntryKind> = {
  [DT_REG]: "file",
  [DT_DIR]: "directory",
  [DT_LNK]: "symlink",
};

/**
 * Buffers the libc calls fill or read, made once and shared by every walker of the process (a
 * walk of one small file would otherwise spend most of its time allocating them): each is used
 * only within one synchronous call, so walkers that take turns cannot disturb each other.
 */
interface Scratch {
  /** A NUL-terminated path, and the string it encodes (undefined once overwritten). */
  path: Uint8Array;
  encoded: string | undefined;
  statx: Uint8Array;
  statxView: DataView;
  times: BigInt64Array;
  dirents: Uint8Array;
  direntView: DataView;
}

let scratch: Scratch | undefined;

function makeScratch(): Scratch {
  const statx = new Uint8Array(256);
  const dirents = new Uint8Array(32768);
  return {
    path: new Uint8Array(16384),
    encoded: undefined,
    statx,
    statxView: new DataView(statx.buffer),
    times: new BigInt64Array(4),
    dirents,
    direntView: new DataView(dirents.buffer),
  };
}

class _LibcIo implements FileIo {
  readonly #lib: Libc;
  readonly #scratch = scratch ??= makeScratch();
  readonly #open = new Map<number, string>();
  readonly #fallback = new _DenoIo();

  constructor(lib: Libc) {
    this.#lib = lib;
  }

  readDir(path: string): DirEntry[] {
    const c = this.#cPath(path);
    const fd = c ? this.#lib.symbols.open(c, O_RDONLY_CLOEXEC | O_DIRECTORY) : -1;
    if (fd < 0) return this.#fallback.readDir(path); // Deno's error
    const entries: DirEntry[] = [];
    try {
      const { dirents, direntView } = this.#scratch;
      const size = BigInt(dirents.length);
      for (let n; (n = Number(this.#lib.symbols.getdents64(fd, dirents, size))) !== 0;) {
        if (n < 0) return this.#fallback.readDir(path);
        // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, NUL-terminated name
        for (let at = 0; at < n; at += direntView.getUint16(at + 16, true)) {
          const end = dirents.indexOf(0, at + 19);
          const bytes = dirents.subarray(at + 19, end);
          let name: string;
          try {
            name = strictDecoder.decode(bytes);
          } catch {
            // Deno would hand out a lossy name that names no file: say what is wrong instead.
            throw new RangeError(
              `File name '${escapeBytes(bytes)}' in '${path}' is not valid UTF-8, ` +
                "which kiln cannot handle",
            );
          }
          if (name === "." || name === "..") continue;
          const inode = Number(direntView.getBigUint64(at, true));
          entries.push([name, DIRENT_KINDS[dirents[at + 18]] ?? "other", inode]);
        }
      }
    } finally {
      this.#lib.symbols.close(fd);
    }
    return entries;
  }

  lstat(path: string): FileStat {
    const c = this.#cPath(path);
    const flags = AT_SYMLINK_NOFOLLOW;
    if (
      !c ||
      this.#lib.symbols.statx(AT_FDCWD, c, flags, STATX_TYPE_MODE_SIZE, this.#scratch.statx) !== 0
    ) {
      return this.#fallback.lstat(path);
    }
    const view = this.#scratch.statxView;
    const mode = view.getUint16(0x1c, true);
    if ((mode & S_IFMT) !== S_IFREG) return this.#fallback.lstat(path);
    return { mode, size: Number(view.getBigUint64(0x28, true)) };
  }

  open(path: string): number {
    const c = this.#cPath(path);
    const fd = c ? this.#lib.symbols.open(c, O_RDONLY_CLOEXEC) : -1;
    if (fd < 0) {
      Deno.openSync(path).close(); // throws Deno's error for this path
      throw new InternalError(`cannot open '${path}' through libc`);
    }
    this.#open.set(fd, path);
    return fd;
  }

  read(handle: number, into: Uint8Array): number {
    const n = Number(this.#lib.symbols.read(handle, into, BigInt(into.length)));
    if (n < 0) throw new Deno.errors.Interrupted(`Reading '${this.#open.get(handle)}' failed`);
    return n;
  }

  close(handle: number): void {
    this.#lib.symbols.close(handle);
    this.#open.delete(handle);
  }

  createFile(path: string, data: Uint8Array, mode: number, mtime?: number): void {
    const c = this.#cPath(path);
    const fd = c ? this.#lib.symbols.openCreate(c, O_CREATE_NEW, mode) : -1;
    if (fd < 0) return this.#fallback.createFile(path, data, mode, mtime); // Deno's error
    try {
      for (let off = 0; off < data.length;) {
        const piece = data.subarray(off);
        const n = Number(this.#lib.symbols.write(fd, piece, BigInt(piece.length)));
        if (n <= 0) throw new Deno.errors.Interrupted(`Writing '${path}' failed`);
        off += n;
      }
      if (mtime !== undefined) {
        const { times } = this.#scratch;
        times.set([BigInt(mtime), 0n, BigInt(mtime), 0n]);
        if (this.#lib.symbols.futimens(fd, times) !== 0) {
          throw new Deno.errors.PermissionDenied(`Cannot set the times of '${path}'`);
        }
      }
    } finally {
      this.#lib.symbols.close(fd);
    }
  }

  [Symbol.dispose](): void {
    for (const fd of this.#open.keys()) this.close(fd); // the library stays loaded
  }

  /** `path` as a NUL-terminated C string in a reused buffer; undefined if it does not fit. */
  #cPath(path: string): Uint8Array | undefined {
    // The walker stats a file, then opens it: the buffer still holds the same path.
    const scratch = this.#scratch;
    if (path === scratch.encoded) return scratch.path;
    scratch.encoded = undefined;
    const { read, written } = encoder.encodeInto(path, scratch.path);
    if (read !== path.length || written >= scratch.path.length) return undefined;
    scratch.path[written] = 0;
    scratch.encoded = path;
    return scratch.path;
  }
}

/**
 * The names in directory `path` with their inode numbers: through `getdents64` where libc can be
 * called (no stat per entry), else a stat of each.
 */
export function directoryInodes(path: string): Map<string, number> {
  using io = openFileIo();
  return new Map(
    io.readDir(path).map(([name, , inode]) => [
      name,
      inode ?? Deno.lstatSync(`${path}/${name}`).ino!,
    ]),
  );
}
