/**
 * The local store: store paths as read-only files under the physical store dir, their metadata
 * in SQLite under the state dir. Adding is atomic: the new path is written under a temporary name
 * beside its final place, canonicalised, then renamed and registered while its path lock is held,
 * so a crash at any point leaves nothing valid that is incomplete.
 */

import { basename, join, resolve } from "node:path";
import {
  type HashAlgorithm,
  hashBytes,
  makeFixedOutputPath,
  makeTextPath,
  renderContentAddress,
  validateStorePathName,
} from "../hashing/mod.ts";
import { importNar } from "./import_nar.ts";
import { dumpPath, hashPath, ingestPath } from "./nar_fs.ts";
import { lockPaths } from "./locks.ts";
import { optimisePaths } from "./optimise.ts";
import { type DerivationOutputsMap, MetadataDb, type PathInfo } from "./metadata_db.ts";
import type { AddTextOptions, Store } from "./store.ts";
import { TempRoots } from "./temp_roots.ts";
import { makeTempPath, pathExists, removeStaleTemps, removeTree } from "./_fs.ts";
import { InternalError } from "../sys/mod.ts";

export type { PathInfo } from "./metadata_db.ts";

/** Where a store lives; the CLI's `Config` satisfies it. */
export interface StoreLocation {
  /** Logical store dir: the string inside every hash. */
  storeDir: string;
  /** Directory on disk under which `storeDir` lives (`/` = as it is). */
  storeRoot: string;
  /** Database, locks and the like. */
  stateDir: string;
  /** Hard-link identical files of each new path through `.links` (`auto-optimise-store`). */
  autoOptimiseStore?: boolean;
}

/** Options of {@link LocalStore.addPath}. */
export interface AddPathOptions {
  /** Store path name (default: the base name of the source). */
  name?: string;
  /** `nar` hashes the serialisation (any file type), `flat` the contents of a regular file. */
  method?: "nar" | "flat";
  /** Hash algorithm of the content address (default sha256). */
  algorithm?: HashAlgorithm;
  /** A fixed-output add (`nix-store --add-fixed`): `method` then defaults to `flat`. */
  fixed?: boolean;
}

/** The schema version Nix 2.x writes into `db/schema`. */
const SCHEMA_VERSION = "10";
/** Present beside a database kiln created; a database without it belongs to someone else. */
const KILN_MARKER = "kiln";
/** Nix's own state dir, which kiln never opens. */
const NIX_STATE_DIR = "/nix/var/nix";

/**
 * A local store opened by one process; several processes may open the same store at once. Its
 * queries answer synchronously, also where {@link Store} allows a promise.
 */
export class LocalStore implements Store {
  readonly storeDir: string;
  /** Database, locks, roots: the state dir, absolute. */
  readonly stateDir: string;
  readonly #storeRoot: string;
  readonly #physicalStoreDir: string;
  readonly #lockDir: string;
  readonly #db: MetadataDb;
  readonly #autoOptimise: boolean;
  readonly #tempRoots: TempRoots;
  #tempsCleaned = false;

  private constructor(location: StoreLocation, db: MetadataDb) {
    this.storeDir = location.storeDir;
    this.#storeRoot = location.storeRoot;
    this.#physicalStoreDir = this.physicalPath(location.storeDir);
    this.stateDir = resolve(location.stateDir);
    this.#lockDir = join(this.stateDir, "locks");
    this.#db = db;
    this.#autoOptimise = location.autoOptimiseStore ?? false;
    this.#tempRoots = new TempRoots(this.stateDir);
  }

  /**
   * Opens the store at `location`, creating its directories and database when absent. Refuses
   * Nix's own state dir and any state dir whose database kiln did not create.
   */
  static open(location: StoreLocation): LocalStore {
    const dbDir = join(resolve(location.stateDir), "db");
    const dbFile = join(dbDir, "db.sqlite");
    refuseForeignStateDir(resolve(location.stateDir), dbDir);
    Deno.mkdirSync(dbDir, { recursive: true });
    if (!pathExists(join(dbDir, KILN_MARKER))) {
      writeFileAtomic(join(dbDir, KILN_MARKER), "kiln store metadata\n");
    }
    const schema = readSchemaVersion(join(dbDir, "schema"));
    const db = MetadataDb.open(dbFile, { createSchema: schema === undefined });
    if (schema === undefined) writeFileAtomic(join(dbDir, "schema"), SCHEMA_VERSION);
    const store = new LocalStore(location, db);
    try {
      Deno.mkdirSync(store.#physicalStoreDir, { recursive: true });
    } catch (e) {
      store.close();
      throw e;
    }
    return store;
  }

  /** Where logical store path `path` (or a file inside it) is on disk. */
  physicalPath(path: string): string {
    return this.#storeRoot === "/" ? path : join(this.#storeRoot, path);
  }

  isValidPath(path: string): boolean {
    return this.#db.isValidPath(path);
  }

  /** The valid ones among `paths`, sorted, each once. */
  queryValidPaths(paths: Iterable<string>): string[] {
    return [...new Set(paths)].filter((p) => this.isValidPath(p)).sort();
  }

  /** Every valid path, sorted. */
  queryAllValidPaths(): string[] {
    return this.#db.queryAllValidPaths();
  }

  queryPathInfo(path: string): PathInfo | undefined {
    return this.#db.queryPathInfo(path);
  }

  /** The paths `path` refers to, sorted; throws when it is not valid. */
  queryReferences(path: string): string[] {
    return this.#requireValid(path).references;
  }

  /** The valid paths that refer to `path`, sorted; throws when it is not valid. */
  queryReferrers(path: string): string[] {
    return this.#db.queryReferrers(path);
  }

  /** The valid path with hash part `hashPart` (as Nix's queryPathFromHashPart), if any. */
  queryPathFromHashPart(hashPart: string): string | undefined {
    return this.#db.queryPathFromHashPart(this.storeDir, hashPart);
  }

  /** Output name -> path recorded for derivation `drvPath`; throws when it is not valid. */
  queryDerivationOutputs(drvPath: string): Map<string, string> {
    return this.#db.queryDerivationOutputs(drvPath);
  }

  /** The valid derivations that have `path` among their outputs, sorted (Nix's query). */
  queryValidDerivers(path: string): string[] {
    return this.#db.queryValidDerivers(path);
  }

  /** How long the last build of each derivation name took here (ms), where one was recorded. */
  queryBuildTimes(names: readonly string[]): Map<string, number> {
    return this.#db.queryBuildTimes(names);
  }

  /** Records build durations (ms) by derivation name, for estimates of later runs. */
  recordBuildTimes(times: ReadonlyMap<string, number>): void {
    this.#db.recordBuildTimes(times);
  }

  /** Invalidates `paths` in one transaction, referrers first; their files stay (see gc.ts). */
  invalidatePaths(paths: readonly string[]): void {
    this.#db.invalidatePaths(paths);
  }

  /** `paths` and everything they reference, sorted; throws naming a path that is not valid. */
  computeClosure(paths: Iterable<string>): string[] {
    return this.#db.computeClosure(paths);
  }

  /**
   * Copies `src` into the store. By default as `nix-store --add` (NAR, sha256: a `source` path);
   * with `fixed` as `nix-store --add-fixed [--recursive] ALGO`. When the path is already valid
   * the copy is discarded and the existing path's info returned.
   */
  async addPath(src: string, options: AddPathOptions = {}): Promise<PathInfo> {
    const method = options.method ?? (options.fixed ? "flat" : "nar");
    const algorithm = options.algorithm ?? "sha256";
    const name = options.name ?? basename(resolve(src));
    validateStorePathName(name);
    const temp = this.#makeTemp(name);
    try {
      const ingested = ingestPath(src, temp, { method, algorithm, canonicalise: true });
      const path = makeFixedOutputPath(this.storeDir, { method, hash: ingested.hash, name });
      await this.addTempRoots([path]);
      await this.#moveIntoPlace(temp, {
        path,
        narHash: ingested.narHash,
        narSize: ingested.narSize,
        references: [],
        registrationTime: nowSeconds(),
        signatures: [],
        ca: renderContentAddress(method, ingested.hash),
        ultimate: false,
      });
      return this.#requireInfo(path);
    } finally {
      removeTree(temp); // nothing left when it was renamed into place
    }
  }

  /**
   * Adds a text file (a `.drv`) with the given references, as Nix's addTextToStore; records
   * `derivationOutputs` for it. Returns its path; nothing is written when it is already valid.
   */
  async addTextToStore(
    name: string,
    contents: string | Uint8Array,
    references: string[],
    options: AddTextOptions = {},
  ): Promise<string> {
    const contentsHash = hashBytes("sha256", contents);
    const path = makeTextPath(this.storeDir, contentsHash, name, references);
    await this.addTempRoots([path]);
    if (this.isValidPath(path)) return path;
    const temp = this.#makeTemp(name);
    try {
      const bytes = typeof contents === "string" ? new TextEncoder().encode(contents) : contents;
      Deno.writeFileSync(temp, bytes, { mode: 0o444 });
      Deno.chmodSync(temp, 0o444); // the umask may have taken bits away; never adds any here
      Deno.utimeSync(temp, 1, 1);
      const nar = hashPath(temp);
      const derivationOutputs = options.derivationOutputs;
      await this.#moveIntoPlace(temp, {
        path,
        narHash: nar.hash,
        narSize: nar.size,
        references: [...new Set(references)].sort(),
        registrationTime: nowSeconds(),
        signatures: [],
        ca: renderContentAddress("text", contentsHash),
        ultimate: false,
      }, derivationOutputs && new Map([[path, derivationOutputs]]));
      return path;
    } finally {
      removeTree(temp);
    }
  }

  /** See {@link Store.addToStore}; {@link importNar} has the options a substituter needs. */
  async addToStore(info: PathInfo, nar: AsyncIterable<Uint8Array>): Promise<void> {
    await importNar(this, info, { nar: () => Promise.resolve({ nar }) });
  }

  /** The NAR of valid path `path`, produced as the stream is read. */
  narFromPath(path: string): ReadableStream<Uint8Array> {
    this.#requireValid(path);
    return dumpPath(this.physicalPath(path));
  }

  /**
   * Registers paths already in place (built or substituted) in one transaction. References must
   * be valid or among `infos`; `derivationOutputs` maps a `.drv` path to its outputs.
   */
  registerValidPaths(
    infos: PathInfo[],
    options: { derivationOutputs?: DerivationOutputsMap } = {},
  ): void {
    const fresh = this.#autoOptimise ? infos.filter((i) => !this.isValidPath(i.path)) : [];
    this.#db.registerValidPaths(infos, options);
    for (const info of fresh) {
      // Best effort, as the paths are valid now (a caller would undo them on an error): a file
      // that cannot be linked stays as it is, each replacement being atomic.
      try {
        optimisePaths(this, [info.path], { readLinks: false });
      } catch {
        // left unoptimised; `kiln store optimise` tells why
      }
    }
  }

  /**
   * Runs `fn` holding an exclusive lock on each of `paths` (store paths), shared with every other
   * kiln process on this store. Locks are taken in sorted order; not reentrant.
   */
  async withPathLock<T>(paths: string[], fn: () => Promise<T>): Promise<T> {
    using _locks = await lockPaths(this.#lockDir, paths);
    return await fn();
  }

  /**
   * Keeps `paths` from the garbage collector for as long as this store is open (temporary roots,
   * see temp_roots.ts); waits while a collection runs. Root a path before adding or using it.
   */
  async addTempRoots(paths: Iterable<string>): Promise<void> {
    await this.#tempRoots.add(paths);
  }

  close(): void {
    this.#tempRoots.close();
    this.#db.close();
  }

  /**
   * A fresh temporary path inside the physical store dir (nothing is created there), e.g. for a
   * build's sandbox root: on the store's file system, so its contents can be renamed into place,
   * and removed by a later run if this process dies.
   */
  makeTempPath(name: string): string {
    return this.#makeTemp(name);
  }

  /** A temporary path for new contents; the first call also clears crashed runs' leftovers. */
  #makeTemp(name: string): string {
    if (!this.#tempsCleaned) {
      removeStaleTemps(this.#physicalStoreDir);
      this.#tempsCleaned = true;
    }
    return makeTempPath(this.#physicalStoreDir, name);
  }

  /** Renames `temp` to `info.path` and registers it, unless another process got there first. */
  async #moveIntoPlace(
    temp: string,
    info: PathInfo,
    derivationOutputs?: DerivationOutputsMap,
  ): Promise<void> {
    using _locks = await lockPaths(this.#lockDir, [info.path]);
    if (this.isValidPath(info.path)) return;
    const dest = this.physicalPath(info.path);
    removeTree(dest); // an invalid path's file is garbage: a crash between rename and register
    Deno.renameSync(temp, dest);
    try {
      this.registerValidPaths([info], { derivationOutputs });
    } catch (e) {
      removeTree(dest);
      throw e;
    }
  }

  #requireInfo(path: string): PathInfo {
    const info = this.queryPathInfo(path);
    if (info === undefined) throw new InternalError(`'${path}' is not valid after adding`);
    return info;
  }

  #requireValid(path: string): PathInfo {
    const info = this.queryPathInfo(path);
    if (info === undefined) throw new RangeError(`Path '${path}' is not valid`);
    return info;
  }
}

function refuseForeignStateDir(stateDir: string, dbDir: string): void {
  const real = realPathOrSelf(stateDir);
  if (real === NIX_STATE_DIR || stateDir === NIX_STATE_DIR) {
    throw new TypeError(`State dir '${stateDir}' is Nix's own; kiln refuses to use it`);
  }
  if (pathExists(join(dbDir, "db.sqlite")) && !pathExists(join(dbDir, KILN_MARKER))) {
    throw new TypeError(
      `State dir '${stateDir}' holds a database kiln did not create (a Nix store?); refusing to use it`,
    );
  }
}

function readSchemaVersion(file: string): string | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(file).trim();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  if (text !== SCHEMA_VERSION) {
    throw new RangeError(
      `Store schema '${file}' has version '${text}', kiln supports ${SCHEMA_VERSION}`,
    );
  }
  return text;
}

/** Writes `file` under a temporary name and renames it, so a reader never sees it half written. */
function writeFileAtomic(file: string, contents: string): void {
  const temp = `${file}.tmp-${Deno.pid}`;
  Deno.writeTextFileSync(temp, contents);
  Deno.renameSync(temp, file);
}

function realPathOrSelf(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
