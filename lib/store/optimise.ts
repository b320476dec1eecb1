/**
 * Deduplication as Nix 2.8's optimise-store.cc: every regular file and symlink of a valid path is
 * hard-linked to `<store>/.links/<nix32 sha256 of its NAR>` (so the executable bit counts), and a
 * file whose contents are there already is replaced by a hard link to it, atomically (a temporary
 * link renamed over it). A file already linked (its inode is a `.links` entry) is skipped, and so
 * is a writable file (something modified it). One difference: a valid path that is a single file
 * or symlink takes the NAR hash its database row records instead of reading it again (the NAR of
 * the path is the NAR of the file), and before any file is replaced the `.links` entry is read and
 * hashed, so that a corrupt entry (or a corrupt file linked under its recorded hash) is removed
 * rather than spread.
 */

import { dirname, join } from "node:path";
import type { Hash } from "../hashing/mod.ts";
import type { PathInfo } from "./metadata_db.ts";
import { hashPath } from "./nar_fs.ts";
import { lutimes, makeTempPath, pathExists } from "./_fs.ts";
import { directoryInodes } from "./_file_io.ts";

/** The directory of hard-link targets in the physical store dir, as Nix names it. */
export const LINKS_DIR = ".links";

/** What optimising needs of the local store. */
export interface OptimiseTarget {
  readonly storeDir: string;
  physicalPath(path: string): string;
  queryPathInfo(path: string): PathInfo | undefined;
  queryAllValidPaths(): string[];
}

/** What an optimisation did, as Nix's OptimiseStats. */
export interface OptimiseStats {
  filesLinked: number;
  /** The sizes of the files replaced by links. */
  bytesFreed: number;
  /** Their 512-byte blocks. */
  blocksFreed: number;
}

/** What {@link optimiseStore} reports besides its result. */
export type OptimiseEvent =
  | { type: "writable"; file: string }
  | { type: "corrupt-link"; link: string }
  | { type: "too-many-links"; link: string };

/** Options of {@link optimiseStore} and {@link optimisePaths}. */
export interface OptimiseOptions {
  onEvent?: (event: OptimiseEvent) => void;
  /**
   * Skip the files already linked, known by the inodes of every `.links` entry (default true).
   * Without it, as Nix's auto-optimise-store, each file is hashed and its link looked up.
   */
  readLinks?: boolean;
}

const S_IWUSR = 0o200;

/** Optimises every valid path, as `nix-store --optimise`. */
export function optimiseStore(store: OptimiseTarget, options: OptimiseOptions = {}): OptimiseStats {
  return optimisePaths(store, store.queryAllValidPaths(), options);
}

/** Optimises the valid ones among `paths` (e.g. paths just added, for `auto-optimise-store`). */
export function optimisePaths(
  store: OptimiseTarget,
  paths: Iterable<string>,
  options: OptimiseOptions = {},
): OptimiseStats {
  const storeDir = store.physicalPath(store.storeDir);
  const linksDir = join(storeDir, LINKS_DIR);
  Deno.mkdirSync(linksDir, { recursive: true });
  const run: _Run = {
    storeDir,
    linksDir,
    inodes: new Set(options.readLinks ?? true ? directoryInodes(linksDir).values() : []),
    stats: { filesLinked: 0, bytesFreed: 0, blocksFreed: 0 },
    emit: options.onEvent ?? (() => {}),
  };
  for (const path of paths) {
    const info = store.queryPathInfo(path);
    if (info === undefined) continue; // collected meanwhile
    const known = info.narHash.algorithm === "sha256" ? info.narHash : undefined;
    optimiseFile(run, store.physicalPath(path), known);
  }
  return run.stats;
}

interface _Run {
  storeDir: string;
  linksDir: string;
  /** Inodes that are `.links` entries. */
  inodes: Set<number>;
  stats: OptimiseStats;
  emit: (event: OptimiseEvent) => void;
}

/** Optimises the file or tree at `file`; `known` is its NAR hash when a single file's is known. */
function optimiseFile(run: _Run, file: string, known?: Hash): void {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return; // collected meanwhile
    throw e;
  }
  if (st.isDirectory) {
    for (const [name, inode] of directoryInodes(file)) {
      if (!run.inodes.has(inode)) optimiseFile(run, join(file, name));
    }
    return;
  }
  if (!st.isFile && !st.isSymlink) return;
  if (st.isFile && (st.mode! & S_IWUSR) !== 0) {
    run.emit({ type: "writable", file });
    return;
  }
  if (st.nlink! > 1 && run.inodes.has(st.ino!)) return;
  const hash = known ?? hashPath(file).hash;
  const link = join(run.linksDir, hash.toString("nix32"));
  if (pathExists(link)) {
    const stLink = Deno.lstatSync(link);
    if (stLink.ino === st.ino) return;
    if (stLink.size !== st.size || !hashPath(link).hash.equals(hash)) {
      run.emit({ type: "corrupt-link", link });
      Deno.removeSync(link);
    } else if (known !== undefined && !hashPath(file).hash.equals(hash)) {
      return optimiseFile(run, file); // the file is not what its row says: as any other file
    }
  }
  if (!pathExists(link)) {
    try {
      Deno.linkSync(file, link);
      run.inodes.add(st.ino!);
      return;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e; // another process linked it first
    }
  }
  replaceByLink(run, file, st, link);
}

/** Replaces `file` by a hard link to `link` through a temporary link renamed over it. */
function replaceByLink(run: _Run, file: string, st: Deno.FileInfo, link: string): void {
  const parent = dirname(file);
  const toggle = parent !== run.storeDir;
  if (toggle) Deno.chmodSync(parent, 0o755);
  const temp = makeTempPath(run.storeDir, "link");
  try {
    try {
      Deno.linkSync(link, temp);
    } catch (e) {
      if (!isTooManyLinks(e)) throw e;
      if (st.size > 0) run.emit({ type: "too-many-links", link });
      return;
    }
    try {
      Deno.renameSync(temp, file);
    } catch (e) {
      Deno.removeSync(temp);
      if (isTooManyLinks(e)) return;
      throw e;
    }
  } finally {
    if (toggle) {
      Deno.chmodSync(parent, 0o555);
      lutimes(parent, Date.now() / 1000, 1);
    }
  }
  run.stats.filesLinked++;
  run.stats.bytesFreed += st.size;
  run.stats.blocksFreed += st.blocks ?? 0;
}

function isTooManyLinks(e: unknown): boolean {
  return e instanceof Error && /EMLINK|too many links/i.test(e.message);
}
