/**
 * Substitution: fetching store paths from binary caches instead of building them, as Nix's
 * PathSubstitutionGoal. Caches are tried in the order of their priority (lower first); a cache's
 * narinfo is used only when it describes the requested path and, under `require-sigs`, carries a
 * signature by a trusted key or has a CA field that yields the path. The NAR is streamed,
 * decompressed, hashed and unpacked in one pass and registered only when it matches the narinfo
 * (and, with a CA field, its contents match that); anything else is reported and the next cache
 * tried. A cache that cannot be reached is skipped for the rest of the run, with one warning.
 *
 * Narinfo answers of remote caches, positive and negative, are kept in the narinfo disk cache
 * for Nix's TTLs. Planning ({@link Substituter.planSubstitution}) queries a closure's narinfos in
 * parallel and returns the graph of substitute goals the scheduler runs.
 */

import { storePathHashPart } from "../hashing/mod.ts";
import {
  DEFAULT_NARINFO_TTLS,
  hashFile,
  hashPath,
  importNar,
  type LocalStore,
  type NarInfoDiskCache,
  type NarInfoTtls,
  NarMismatchError,
  type PathInfo,
} from "../store/mod.ts";
import { type BinaryCache, isCacheUnavailable } from "./binary_cache.ts";
import { type ContentCheck, contentCheck, type NarInfo, provesItself } from "./narinfo.ts";
import { fingerprintPath, type PublicKey, verifySignatures } from "./signing.ts";
import { createLimiter } from "./_limit.ts";

/** Options of {@link Substituter.open}. */
export interface SubstituterOptions {
  /** `trusted-public-keys`. */
  trustedKeys?: readonly PublicKey[];
  /** `require-sigs` (default true): without a trusted signature a narinfo is rejected. */
  requireSigs?: boolean;
  /** Where remote caches' answers are remembered between runs. */
  diskCache?: NarInfoDiskCache;
  ttls?: NarInfoTtls;
  /** Told about skipped caches and failed downloads (the CLI prints `warning: ...`). */
  onWarning?: (message: string) => void;
  /** Narinfo queries in flight at once while planning (default 32). */
  queryJobs?: number;
  /** Seconds since the epoch (default: the real clock). */
  now?: () => number;
}

/** A node of the substitution graph, as the scheduler's GoalNode. */
export interface SubstitutionNode {
  kind: "substitute";
  /** The path's references (itself excluded): substituted first. */
  dependencies: readonly string[];
  /** Already valid in the local store. */
  valid?: boolean;
}

/** What {@link Substituter.planSubstitution} found. */
export interface SubstitutionPlan {
  /** Every path of the wanted paths' closures, local or substitutable; a GoalGraph. */
  graph: Map<string, SubstitutionNode>;
  /** Paths of those closures that no cache can provide, with why (their goals will fail). */
  missing: Map<string, string>;
  /** The narinfo each substitutable path will be fetched with first. */
  narInfos: Map<string, NarInfo>;
}

/** What substituting one path came to; the scheduler's SubstituteOutcome. */
export type SubstitutionOutcome =
  | { status: "substituted" | "already-valid" }
  | { status: "failed"; reason: "no-substituters" | "output-rejected"; message: string };

type Lookup =
  | { kind: "found"; info: NarInfo }
  | { kind: "missing" }
  | { kind: "rejected"; why: string };

/** The caches of one run, with what they answered so far. */
export class Substituter {
  readonly #store: LocalStore;
  readonly #caches: readonly BinaryCache[];
  readonly #options: SubstituterOptions;
  readonly #trustedKeys: readonly PublicKey[];
  readonly #disabled = new Set<BinaryCache>();
  readonly #lookups = new Map<BinaryCache, Map<string, Promise<Lookup>>>();

  private constructor(store: LocalStore, caches: BinaryCache[], options: SubstituterOptions) {
    this.#store = store;
    this.#caches = caches;
    this.#options = options;
    this.#trustedKeys = options.trustedKeys ?? [];
  }

  /**
   * Reads each cache's nix-cache-info (in parallel) and orders the caches by priority, lower
   * first (equal priorities keep their order). A cache that cannot be reached, or is for another
   * store dir, is skipped with a warning.
   */
  static async open(
    store: LocalStore,
    caches: readonly BinaryCache[],
    options: SubstituterOptions = {},
  ): Promise<Substituter> {
    const ranked = await Promise.all(caches.map(async (cache, index) => {
      try {
        return { cache, index, priority: await cache.priority() };
      } catch (e) {
        if (!isCacheUnavailable(e) && !(e instanceof RangeError) && !(e instanceof SyntaxError)) {
          throw e;
        }
        options.onWarning?.(
          `binary cache '${cache.url}' is ${
            isCacheUnavailable(e) ? "not reachable" : "unusable"
          } (${firstLine(e)}); skipping it for the rest of this run`,
        );
        return undefined;
      }
    }));
    const usable = ranked.filter((r) => r !== undefined)
      .sort((a, b) => a.priority - b.priority || a.index - b.index)
      .map((r) => r.cache);
    return new Substituter(store, usable, options);
  }

  /** The usable caches, in the order they are tried. */
  get caches(): readonly BinaryCache[] {
    return this.#caches.filter((c) => !this.#disabled.has(c));
  }

  /**
   * The closure of `paths` as a graph of substitute goals (dependencies = references), with a
   * narinfo for each path that is not valid yet. Narinfos are queried in parallel.
   */
  async planSubstitution(paths: Iterable<string>): Promise<SubstitutionPlan> {
    const plan: SubstitutionPlan = { graph: new Map(), missing: new Map(), narInfos: new Map() };
    const limit = createLimiter(this.#options.queryJobs ?? 32);
    const seen = new Set<string>();
    const tasks: Promise<void>[] = [];
    const visit = (path: string) => {
      if (seen.has(path)) return;
      seen.add(path);
      tasks.push(limit(() => this.#planPath(path, plan, visit)));
    };
    for (const path of paths) visit(path);
    for (let i = 0; i < tasks.length; i++) await tasks[i];
    return plan;
  }

  /** The first trusted narinfo for `storePath` among the caches, or why there is none. */
  async queryNarInfo(storePath: string): Promise<{ cache: BinaryCache; info: NarInfo } | string> {
    const problems: string[] = [];
    for (const cache of this.#caches) {
      const lookup = await this.#lookup(cache, storePath);
      if (lookup.kind === "found") return { cache, info: lookup.info };
      if (lookup.kind === "rejected") problems.push(lookup.why);
    }
    return problems.join("; ") ||
      `path '${storePath}' is required, but there is no substituter that can build it`;
  }

  /**
   * Substitutes `storePath`, whose references must be valid: the scheduler's substitute
   * function. Tries each cache with a trusted narinfo in turn; rejects (throws) only when
   * `signal` aborts.
   */
  async substitutePath(
    storePath: string,
    signal: AbortSignal,
    options: { repair?: boolean } = {},
  ): Promise<SubstitutionOutcome> {
    if (!options.repair && this.#store.isValidPath(storePath)) return { status: "already-valid" };
    const problems: string[] = [];
    for (const cache of this.#caches) {
      signal.throwIfAborted();
      const lookup = await this.#lookup(cache, storePath);
      if (lookup.kind === "missing") continue;
      if (lookup.kind === "rejected") {
        problems.push(lookup.why);
        continue;
      }
      const info = lookup.info;
      const check = contentCheck(info);
      try {
        await importNar(this.#store, toPathInfo(info, this.#now()), {
          nar: () => cache.readNar(info, signal),
          signal,
          check: check && ((path) => checkContents(path, info, check)),
          repair: options.repair,
        });
        return { status: "substituted" };
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        if (isCacheUnavailable(e)) this.#disable(cache, e);
        const why = `Cannot substitute '${storePath}' from '${cache.url}': ${firstLine(e)}`;
        this.#options.onWarning?.(why);
        problems.push(why);
      }
    }
    if (problems.length === 0) {
      return {
        status: "failed",
        reason: "no-substituters",
        message: `path '${storePath}' is required, but there is no substituter that can build it`,
      };
    }
    return { status: "failed", reason: "output-rejected", message: problems.join("\n") };
  }

  async #planPath(
    path: string,
    plan: SubstitutionPlan,
    visit: (path: string) => void,
  ): Promise<void> {
    // Rooted before it is seen valid: a collection must not take a reference meanwhile.
    await this.#store.addTempRoots([path]);
    if (this.#store.isValidPath(path)) {
      plan.graph.set(path, { kind: "substitute", dependencies: [], valid: true });
      return;
    }
    const found = await this.queryNarInfo(path);
    if (typeof found === "string") {
      plan.graph.set(path, { kind: "substitute", dependencies: [] });
      plan.missing.set(path, found);
      return;
    }
    const dependencies = found.info.references.filter((r) => r !== path);
    plan.graph.set(path, { kind: "substitute", dependencies });
    plan.narInfos.set(path, found.info);
    for (const reference of dependencies) visit(reference);
  }

  /** What `cache` says about `storePath`, asked once per run. */
  #lookup(cache: BinaryCache, storePath: string): Promise<Lookup> {
    let forCache = this.#lookups.get(cache);
    if (forCache === undefined) this.#lookups.set(cache, forCache = new Map());
    let lookup = forCache.get(storePath);
    if (lookup === undefined) {
      lookup = this.#ask(cache, storePath);
      forCache.set(storePath, lookup);
    }
    return lookup;
  }

  async #ask(cache: BinaryCache, storePath: string): Promise<Lookup> {
    if (this.#disabled.has(cache)) return { kind: "missing" };
    const hashPart = storePathHashPart(this.#store.storeDir, storePath);
    let text: string | undefined;
    try {
      text = await this.#readNarInfoText(cache, hashPart);
    } catch (e) {
      if (isCacheUnavailable(e)) {
        this.#disable(cache, e);
        return { kind: "missing" };
      }
      return {
        kind: "rejected",
        why: `Cannot query '${storePath}' in '${cache.url}': ${firstLine(e)}`,
      };
    }
    if (text === undefined) return { kind: "missing" };
    let info: NarInfo;
    try {
      info = cache.parseNarInfo(text, storePath);
    } catch (e) {
      if (!(e instanceof SyntaxError || e instanceof RangeError)) throw e;
      return { kind: "rejected", why: e.message };
    }
    // A content-addressed path, whose contents the import checks, needs no signature (as in Nix).
    if (this.#options.requireSigs !== false && !provesItself(cache.storeDir, info)) {
      if (!verifySignatures(fingerprintPath(storePath, info), info.sigs, this.#trustedKeys)) {
        return {
          kind: "rejected",
          why: `The narinfo of '${storePath}' in binary cache '${cache.url}' ${
            info.sigs.length === 0 ? "is not signed" : "has no valid signature"
          } by a key in 'trusted-public-keys'`,
        };
      }
    }
    return { kind: "found", info };
  }

  /** The narinfo's text, from the disk cache when it is fresh there (remote caches only). */
  async #readNarInfoText(cache: BinaryCache, hashPart: string): Promise<string | undefined> {
    const disk = cache.remote ? this.#options.diskCache : undefined;
    const now = this.#now();
    const cached = disk?.lookup(cache.url, hashPart, {
      ttls: this.#options.ttls ?? DEFAULT_NARINFO_TTLS,
      now,
    });
    if (cached !== undefined) return cached.narinfo;
    const text = await cache.readNarInfoText(hashPart);
    disk?.insert(cache.url, hashPart, { narinfo: text }, now);
    return text;
  }

  #disable(cache: BinaryCache, e: unknown): void {
    if (this.#disabled.has(cache)) return;
    this.#disabled.add(cache);
    this.#options.onWarning?.(
      `binary cache '${cache.url}' is not reachable (${
        firstLine(e)
      }); skipping it for the rest of this run`,
    );
  }

  #now(): number {
    return this.#options.now?.() ?? Math.floor(Date.now() / 1000);
  }
}

/**
 * Nix's check of a content-addressed path it adds (`hashCAPath`): the unpacked contents at `path`
 * hash to what the CA field says. A recursive sha256 address is the NAR hash, checked already.
 */
function checkContents(path: string, info: NarInfo, check: ContentCheck): void {
  const { method, hash } = check;
  let got;
  if (method === "nar") {
    got = hash.algorithm === "sha256" ? info.narHash : hashPath(path, hash.algorithm).hash;
  } else if (Deno.lstatSync(path).isFile) {
    got = hashFile(path, hash.algorithm);
  }
  if (got !== undefined && got.equals(hash)) return;
  throw new NarMismatchError(
    `ca hash mismatch importing path '${info.storePath}': specified ${hash.toNix32Prefixed()}, got ${
      got === undefined ? "no regular file" : got.toNix32Prefixed()
    }`,
  );
}

/** The local store's record of a substituted path: trusted for its signatures, not ultimate. */
function toPathInfo(info: NarInfo, now: number): PathInfo {
  return {
    path: info.storePath,
    narHash: info.narHash,
    narSize: info.narSize,
    references: info.references,
    ...(info.deriver && { deriver: info.deriver }),
    registrationTime: now,
    signatures: info.sigs,
    ...(info.ca && { ca: info.ca }),
    ultimate: false,
  };
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}
