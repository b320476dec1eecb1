/**
 * NAR and the file system: dump a tree as `nix-store --dump` does, hash it, restore a NAR into a
 * tree, copy a tree while hashing it (`ingestPath`), and list a NAR's entries. All walks are
 * synchronous (sync fs ops cost far less than async ones across many small files), read files
 * through libc where allowed (_file_io.ts) and hash on a second thread (_parallel_hasher.ts).
 */

import { basename, dirname, join } from "node:path";
import {
  concatBytes,
  createHasher,
  type Hash,
  type HashAlgorithm,
  type Hasher,
  NAR_FILE_HEAD_BYTES,
  type NarNode,
  type NarSink,
  NarWriter,
  parseNar,
  sortNames,
} from "../hashing/mod.ts";
import { type FileIo, openFileIo } from "./_file_io.ts";
import { ParallelHasher } from "./_parallel_hasher.ts";
import { lutimes, pathExists, removeTree } from "./_fs.ts";
import { InternalError } from "../sys/mod.ts";

/** The bit Nix reads as "executable" (S_IXUSR). */
const S_IXUSR = 0o100;
/**
 * Large files are read (and copied) in pieces this big, which stay in a core's L2 cache between
 * the read and the write or digest: 1 MiB pieces cost a third more kernel time in copies.
 */
const LARGE_FILE_PIECE = 1 << 16;
/** The mtime of every canonical store object (Nix's mtimeStore). */
const CANONICAL_MTIME = 1;

type _Kind = "file" | "directory" | "symlink";

/** Where a walk sends the NAR and, when ingesting, the copy of the tree. */
interface _Walk {
  writer: NarWriter;
  /** Copying to a destination: the process umask, to fix modes it cuts. */
  copy?: { umask: number };
  /** Leave the output (the copy, else the tree itself) as Nix's canonicalisePathMetaData does. */
  canonicalise?: boolean;
  /** Digest of a file's bare contents (flat ingestion of a single file). */
  contents?: Hasher;
  /** When hashing only: a hashing thread that can write files' nodes itself. */
  offload?: ParallelHasher;
}

/** The bytes of `nix-store --dump path`, produced as the stream is read. */
export function dumpPath(path: string): ReadableStream<Uint8Array> {
  const queue: Uint8Array[] = [];
  let dumper: _TreeDumper | undefined;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      dumper ??= new _TreeDumper(path, undefined, {
        writer: new NarWriter((c) => void queue.push(c.slice())),
      });
      try {
        while (queue.length === 0 && dumper.step()) {
          // one file or one buffer of a large file per step
        }
      } catch (e) {
        dumper[Symbol.dispose]();
        throw e;
      }
      if (dumper.done) {
        dumper.walk.writer.flush();
        dumper[Symbol.dispose]();
      }
      for (const c of queue.splice(0)) controller.enqueue(c);
      if (dumper.done) controller.close();
    },
    cancel() {
      dumper?.[Symbol.dispose]();
    },
  }, { highWaterMark: 0 });
}

/**
 * The whole NAR of `path` in one buffer, read straight into it: `size` (what the NAR is expected
 * to take, e.g. the store's NarSize) sizes the buffer, and a NAR of another size still comes out
 * whole and right, only with a copy. The buffer is `into` (whatever it holds) where that is large
 * enough: filling a buffer again costs a fraction of a fresh one's page faults.
 */
export function dumpPathBytes(
  path: string,
  size: number,
  into?: ArrayBuffer,
): Uint8Array<ArrayBuffer> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const writer = new NarWriter((chunk) => {
    chunks.push(chunk);
    total += chunk.length;
    return new Uint8Array(1 << 20); // the chunk is kept: the writer goes on in a fresh buffer
  }, { buffer: bufferOf(Math.max(size, 8192), into) });
  _dumpTree(path, undefined, { writer });
  return chunks.length === 1 ? chunks[0] as Uint8Array<ArrayBuffer> : concatBytes(chunks, total);
}

/** `size` bytes of `into` where it has them, else a new buffer. */
function bufferOf(size: number, into: ArrayBuffer | undefined): Uint8Array {
  return into !== undefined && into.byteLength >= size
    ? new Uint8Array(into, 0, size)
    : new Uint8Array(size);
}

/** Extras of {@link hashPath}, for checking a build's output in the same walk. */
export interface HashPathOptions {
  /** Canonicalise the tree in place as it is read (modes 0444/0555, mtime 1), as Nix does. */
  canonicalise?: boolean;
  /** Sees every NAR byte too, in order (e.g. a reference scanner); valid only during the call. */
  onChunk?: (chunk: Uint8Array) => void;
}

/**
 * NAR hash (default sha256) and NAR size of the tree at `path`. The digest is computed on a
 * second thread while this one reads, when the tree is large enough to be worth it.
 */
export function hashPath(
  path: string,
  algorithm: HashAlgorithm = "sha256",
  options: HashPathOptions = {},
): { hash: Hash; size: number } {
  const { onChunk, canonicalise } = options;
  // Large files go to the hashing thread directly, unless every NAR byte must reach `onChunk`.
  using hasher = new ParallelHasher(algorithm, { files: onChunk === undefined });
  const sink: NarSink = onChunk
    ? (c) => {
      onChunk(c);
      return hasher.publish(c);
    }
    : (c) => hasher.publish(c);
  const writer = new NarWriter(sink, { buffer: hasher.buffer });
  _dumpTree(path, undefined, { writer, canonicalise, offload: onChunk ? undefined : hasher });
  const hash = hasher.digest();
  return { hash, size: writer.size + hasher.bytesElsewhere };
}

/** The hash of the contents of the regular file at `path` (a flat hash, as Nix's `hashFile`). */
export function hashFile(path: string, algorithm: HashAlgorithm): Hash {
  const hasher = createHasher(algorithm);
  using file = Deno.openSync(path);
  const buffer = new Uint8Array(1 << 20);
  for (let n = file.readSync(buffer); n !== null && n > 0; n = file.readSync(buffer)) {
    hasher.update(buffer.subarray(0, n));
  }
  return hasher.digest();
}

/** How {@link ingestPath} hashes and copies. */
export interface IngestOptions {
  /** `nar`: `hash` is of the NAR; `flat`: of the file's contents (src must be a regular file). */
  method: "nar" | "flat";
  algorithm: HashAlgorithm;
  /** Leave the copy as Nix's canonicalisePathMetaData does (modes 0444/0555, mtime 1). */
  canonicalise?: boolean;
}

/**
 * Copies the tree at `src` to `dest` (which must not exist) in one pass, reading each file once,
 * while computing its sha256 NAR hash and size and the requested `hash`. Regular files keep their
 * executable bit; other file types are rejected. On failure nothing is left at `dest`.
 */
export function ingestPath(
  src: string,
  dest: string,
  options: IngestOptions,
): { narHash: Hash; narSize: number; hash: Hash } {
  _assertAbsent(dest);
  using narHasher = new ParallelHasher("sha256");
  const extra = options.method === "nar" && options.algorithm !== "sha256"
    ? createHasher(options.algorithm)
    : undefined;
  const sink: NarSink = extra
    ? (c) => {
      extra.update(c);
      return narHasher.publish(c);
    }
    : (c) => narHasher.publish(c);
  const walk: _Walk = {
    writer: new NarWriter(sink, { buffer: narHasher.buffer }),
    copy: { umask: Deno.umask() },
    canonicalise: options.canonicalise,
  };
  if (options.method === "flat") {
    if (!Deno.lstatSync(src).isFile) {
      throw new TypeError(`Cannot ingest '${src}' flat: it is not a regular file`);
    }
    walk.contents = createHasher(options.algorithm);
  }
  try {
    _dumpTree(src, dest, walk);
  } catch (e) {
    removeTree(dest);
    throw e;
  }
  const narHash = narHasher.digest();
  return {
    narHash,
    narSize: walk.writer.size,
    hash: walk.contents?.digest() ?? extra?.digest() ?? narHash,
  };
}

/** Options of {@link restoreNar}. */
export interface RestoreOptions {
  /** Leave the tree as Nix's canonicalisePathMetaData does (modes 0444/0555, mtime 1). */
  canonicalise?: boolean;
  /** The NAR's sha256, when the caller hashed exactly these bytes already (not hashed again). */
  narHash?: Hash;
  /**
   * Write straight at `dest`, a temporary name of the caller's, instead of beside it and
   * renaming: a crash may then leave a partial tree there (a failure still removes it).
   */
  inPlace?: boolean;
}

/**
 * Unpacks a NAR into `dest` (which must not exist), validating it strictly (see parseNar). It is
 * written into a temporary sibling and renamed at the end, so a bad NAR leaves nothing behind.
 * Symlinks are created as they are and never followed. Returns the sha256 and size of the NAR.
 */
export async function restoreNar(
  nar: AsyncIterable<Uint8Array>,
  dest: string,
  options: RestoreOptions = {},
): Promise<{ narHash: Hash; narSize: number }> {
  _assertAbsent(dest);
  const canonicalise = options.canonicalise ?? false;
  const umask = Deno.umask();
  const tmp = options.inPlace
    ? dest
    : join(dirname(dest), `.${basename(dest)}.tmp-${crypto.randomUUID().slice(0, 8)}`);
  const hasher = options.narHash ? undefined : createHasher("sha256");
  let narSize = 0;
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const chunk of nar) {
      hasher?.update(chunk);
      narSize += chunk.length;
      yield chunk;
    }
  }
  const dirs: string[] = [];
  let file: Deno.FsFile | undefined;
  let left = 0;
  const finishFile = () => {
    if (canonicalise) file!.utimeSync(CANONICAL_MTIME, CANONICAL_MTIME);
    file!.close();
    file = undefined;
  };
  try {
    for await (const event of parseNar(counted())) {
      const path = event.type === "contents" ? "" : _under(tmp, event.path);
      switch (event.type) {
        case "directory":
          Deno.mkdirSync(path);
          dirs.push(path);
          break;
        case "regular": {
          const mode = _fileMode(event.executable, canonicalise);
          file = Deno.openSync(path, { write: true, createNew: true, mode });
          if ((mode & umask) !== 0) Deno.chmodSync(path, mode);
          left = event.size;
          if (left === 0) finishFile();
          break;
        }
        case "contents":
          _writeAll(file!, event.chunk);
          left -= event.chunk.length;
          if (left === 0) finishFile();
          break;
        case "symlink":
          Deno.symlinkSync(event.target, path);
          if (canonicalise) lutimes(path, CANONICAL_MTIME, CANONICAL_MTIME);
          break;
        default:
          throw new InternalError(`unexpected NAR event ${String(event satisfies never)}`);
      }
    }
    if (canonicalise) { for (const dir of dirs.reverse()) _canonicaliseDirectory(dir); }
    if (tmp !== dest) {
      _assertAbsent(dest);
      Deno.renameSync(tmp, dest);
    }
  } catch (e) {
    file?.close();
    removeTree(tmp);
    throw e;
  }
  return { narHash: options.narHash ?? hasher!.digest(), narSize };
}

/** The nodes of a NAR in order (directories before their entries), validating it as it goes. */
export async function* listNar(nar: AsyncIterable<Uint8Array>): AsyncGenerator<NarNode> {
  for await (const event of parseNar(nar)) if (event.type !== "contents") yield event;
}

/** Dumps (and copies) a whole tree, then flushes the writer. */
function _dumpTree(src: string, dest: string | undefined, walk: _Walk): void {
  using dumper = new _TreeDumper(src, dest, walk);
  while (dumper.step()) {
    // one file or one buffer of a large file per step
  }
  walk.writer.flush();
}

interface _OpenDirectory {
  src: string;
  dest: string | undefined;
  names: string[];
  kinds: Map<string, _Kind>;
  next: number;
  /** An entry was started and its node is complete once this directory is on top again. */
  entryOpen: boolean;
}

interface _LargeFile {
  src: string;
  dest: string | undefined;
  mode: number;
  input: number;
  output: Deno.FsFile | undefined;
  left: number;
}

/**
 * Walks a tree depth-first in NAR order, one step at a time (a file, a directory's start or end,
 * or one buffer of a file too large for the writer's buffer), so that a stream can pause it.
 */
class _TreeDumper implements Disposable {
  readonly #files: FileIo = openFileIo();
  readonly #stack: _OpenDirectory[] = [];
  #large: _LargeFile | undefined;
  #started = false;
  done = false;

  constructor(readonly src: string, readonly dest: string | undefined, readonly walk: _Walk) {}

  /** Does the next step; false once the whole tree has been written. */
  step(): boolean {
    const { writer, canonicalise } = this.walk;
    if (this.#large) {
      this.#largeFileStep(this.#large);
      return true;
    }
    if (!this.#started) {
      this.#started = true;
      this.#node(this.src, this.dest, _kindOf(this.src, Deno.lstatSync(this.src)));
      return true;
    }
    const top = this.#stack.at(-1);
    if (!top) {
      this.done = true;
      return false;
    }
    if (top.entryOpen) {
      writer.end();
      top.entryOpen = false;
    }
    if (top.next === top.names.length) {
      writer.end();
      this.#stack.pop();
      if (canonicalise) _canonicaliseDirectory(top.dest ?? top.src);
      return true;
    }
    const name = top.names[top.next++];
    writer.entry(name);
    top.entryOpen = true;
    const to = top.dest === undefined ? undefined : `${top.dest}/${name}`;
    this.#node(`${top.src}/${name}`, to, top.kinds.get(name)!);
    return true;
  }

  [Symbol.dispose](): void {
    this.#closeLarge();
    this.#files[Symbol.dispose]();
  }

  /** Fixes a copied file's mode where the umask cut it. */
  #fixMode(path: string, mode: number): void {
    if ((mode & this.walk.copy!.umask) !== 0) Deno.chmodSync(path, mode);
  }

  #closeLarge(): void {
    if (this.#large) this.#files.close(this.#large.input);
    this.#large?.output?.close();
    this.#large = undefined;
  }

  #node(src: string, dest: string | undefined, kind: _Kind): void {
    const { writer, canonicalise } = this.walk;
    switch (kind) {
      case "file": {
        // While the hashing thread is short of work it takes whole files, stat and all.
        const offload = this.walk.offload;
        if (dest === undefined && !this.walk.contents && !canonicalise && offload?.hungry) {
          return writer.flush((c) => offload.publishFile(c, src));
        }
        return this.#file(src, dest);
      }
      case "symlink": {
        const target = Deno.readLinkSync(src);
        writer.symlink(target);
        if (dest !== undefined) Deno.symlinkSync(target, dest);
        if (canonicalise) lutimes(dest ?? src, CANONICAL_MTIME, CANONICAL_MTIME);
        return;
      }
      case "directory": {
        if (dest !== undefined) Deno.mkdirSync(dest);
        const kinds = new Map<string, _Kind>();
        for (const [name, kind] of this.#files.readDir(src)) {
          const path = `${src}/${name}`;
          kinds.set(name, kind === "other" ? _kindOf(path, Deno.lstatSync(path)) : kind);
        }
        writer.directory();
        const names = sortNames([...kinds.keys()]);
        this.#stack.push({ src, dest, names, kinds, next: 0, entryOpen: false });
        return;
      }
      default:
        throw new InternalError(`unexpected file kind ${String(kind satisfies never)}`);
    }
  }

  #file(src: string, dest: string | undefined): void {
    const { writer, contents, canonicalise } = this.walk;
    const files = this.#files;
    const info = files.lstat(src);
    const executable = (info.mode & S_IXUSR) !== 0;
    const mode = _fileMode(executable, canonicalise ?? false);
    if (canonicalise && dest === undefined) _canonicaliseFile(src, info.mode, mode);
    // The hashing thread writes the node of a file that does not fit the buffer's room itself,
    // and of one that does when it is short of work.
    const offload = dest === undefined && !contents && info.size > 0
      ? this.walk.offload
      : undefined;
    const fits = info.size <= writer.room - NAR_FILE_HEAD_BYTES;
    if (offload && (fits ? offload.hungry : offload.takesFiles)) {
      const file = { executable, size: info.size };
      return writer.flush((c) => offload.publishFile(c, src, file));
    }
    writer.regular(executable, info.size);
    if (info.size > writer.bufferSize) {
      const input = files.open(src);
      this.#large = { src, dest, mode, input, output: undefined, left: info.size };
      if (dest !== undefined) {
        this.#large.output = Deno.openSync(dest, { write: true, createNew: true, mode });
      }
      return;
    }
    // Small file: read straight into the NAR buffer, and copy it from there.
    const data = writer.contentsInPlace(info.size);
    if (info.size > 0) {
      const input = files.open(src);
      try {
        _readFull(files, input, data, src);
      } finally {
        files.close(input);
      }
    }
    contents?.update(data);
    if (dest !== undefined) {
      files.createFile(dest, data, mode, canonicalise ? CANONICAL_MTIME : undefined);
      this.#fixMode(dest, mode);
    }
    writer.end();
  }

  #largeFileStep(file: _LargeFile): void {
    const { writer, contents } = this.walk;
    const piece = writer.contentsInPlace(Math.min(file.left, LARGE_FILE_PIECE));
    _readFull(this.#files, file.input, piece, file.src);
    contents?.update(piece);
    if (file.output) _writeAll(file.output, piece);
    file.left -= piece.length;
    if (file.left > 0) return;
    if (file.output) {
      this.#fixMode(file.dest!, file.mode);
      if (this.walk.canonicalise) file.output.utimeSync(CANONICAL_MTIME, CANONICAL_MTIME);
    }
    this.#closeLarge();
    writer.end();
  }
}

function _readFull(files: FileIo, handle: number, into: Uint8Array, path: string): void {
  for (let off = 0; off < into.length;) {
    const n = files.read(handle, into.subarray(off));
    if (n === 0) throw new RangeError(`File '${path}' shrank while being read`);
    off += n;
  }
}

/** Canonicalises a file in place: its mode if it differs, and its mtime. */
function _canonicaliseFile(path: string, current: number, mode: number): void {
  if ((current & 0o7777) !== mode) Deno.chmodSync(path, mode);
  Deno.utimeSync(path, CANONICAL_MTIME, CANONICAL_MTIME);
}

function _kindOf(path: string, info: Deno.FileInfo): _Kind {
  if (info.isFile) return "file";
  if (info.isDirectory) return "directory";
  if (info.isSymlink) return "symlink";
  return _unsupported(path, info);
}

function _unsupported(path: string, info: Deno.FileInfo): never {
  const kind = info.isFifo
    ? "a FIFO"
    : info.isSocket
    ? "a socket"
    : info.isCharDevice
    ? "a character device"
    : info.isBlockDevice
    ? "a block device"
    : "of an unknown type";
  throw new TypeError(
    `File '${path}' is ${kind}: only regular files, directories and symlinks can be archived`,
  );
}

function _fileMode(executable: boolean, canonicalise: boolean): number {
  if (canonicalise) return executable ? 0o555 : 0o444;
  return executable ? 0o777 : 0o666;
}

function _canonicaliseDirectory(path: string): void {
  Deno.chmodSync(path, 0o555);
  Deno.utimeSync(path, CANONICAL_MTIME, CANONICAL_MTIME);
}

function _under(root: string, path: string): string {
  return path === "" ? root : `${root}/${path}`;
}

function _writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length;) off += file.writeSync(bytes.subarray(off));
}

function _assertAbsent(path: string): void {
  if (pathExists(path)) throw new Deno.errors.AlreadyExists(`Destination '${path}' already exists`);
}
