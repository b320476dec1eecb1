/**
 * What a build engine and Nix's worker protocol need from any store: the local one, and later a
 * daemon client or a machine over SSH. A result is a value or a promise of one (`Awaitable`), so
 * the local store answers its queries synchronously (the build path calls them in hot loops)
 * while a remote store answers over the wire; callers through this interface always `await`.
 */

import type { PathInfo } from "./metadata_db.ts";

/** A value, or a promise of it. */
export type Awaitable<T> = T | Promise<T>;

/** Options of {@link Store.addTextToStore}. */
export interface AddTextOptions {
  /** For a `.drv`: its output names and paths, recorded for `queryDerivationOutputs`. */
  derivationOutputs?: Map<string, string>;
}

/** A Nix store; store paths are full logical paths (`<storeDir>/<hash>-<name>`). */
export interface Store {
  /** The logical store dir: the string inside every store path's hash. */
  readonly storeDir: string;

  /** Whether `path` is valid (registered, complete). */
  isValidPath(path: string): Awaitable<boolean>;

  /** The valid ones among `paths`, sorted, each once. */
  queryValidPaths(paths: Iterable<string>): Awaitable<string[]>;

  /** What the store knows about `path`; undefined when it is not valid. */
  queryPathInfo(path: string): Awaitable<PathInfo | undefined>;

  /** The valid path whose hash part is `hashPart`, if any. */
  queryPathFromHashPart(hashPart: string): Awaitable<string | undefined>;

  /** The paths `path` refers to, sorted (itself too, if it does); throws when it is not valid. */
  queryReferences(path: string): Awaitable<string[]>;

  /** The valid paths that refer to `path`, sorted; throws when it is not valid. */
  queryReferrers(path: string): Awaitable<string[]>;

  /** `paths` and everything they refer to, directly or not, sorted; throws on an invalid one. */
  computeClosure(paths: Iterable<string>): Awaitable<string[]>;

  /** Output name -> output path recorded for derivation `drvPath`; throws when it is not valid. */
  queryDerivationOutputs(drvPath: string): Awaitable<Map<string, string>>;

  /**
   * Adds `info.path` from its NAR with `info`'s metadata, as Nix's `addToStore(info, source)`.
   * Nothing happens (and `nar` may be left unread) when the path is valid already. Throws when
   * a reference other than the path itself is not valid, or when the NAR's hash or size is not
   * `info`'s (a `NarMismatchError`); the store is then as it was.
   */
  addToStore(info: PathInfo, nar: AsyncIterable<Uint8Array>): Promise<void>;

  /**
   * Adds a text file (a `.drv`, a `builtins.toFile`) with the given references, as Nix's
   * `addTextToStore`, and returns its path; a valid path is left as it is.
   */
  addTextToStore(
    name: string,
    contents: string | Uint8Array,
    references: string[],
    options?: AddTextOptions,
  ): Promise<string>;

  /** The NAR serialisation of valid path `path`, as `nix-store --dump` prints it. */
  narFromPath(path: string): Awaitable<ReadableStream<Uint8Array>>;
}
