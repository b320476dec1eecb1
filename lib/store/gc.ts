/**
 * The garbage collector, as Nix 2.8's: a valid path is live when a root reaches it through
 * references, through `keep-derivations` (a live output keeps the derivation recorded as its
 * deriver) or through `keep-outputs` (a live derivation keeps its valid outputs); every other
 * valid path is dead. Dead paths are deleted referrers first, in batches: a batch is invalidated
 * in one transaction, then its files are removed, so a collector killed at any point leaves
 * every valid path whole, and files of invalid paths that the next collection removes.
 */

import { parseStorePathBaseName } from "../hashing/mod.ts";
import { removeStaleTemps, removeTree } from "./_fs.ts";
import type { LocalStore } from "./local_store.ts";
import { findRoots } from "./roots.ts";
import { findRuntimeRoots } from "./runtime_roots.ts";
import { lockGc, readTempRoots } from "./temp_roots.ts";

/**
 * Every root as `[link, path]`, as `nix-store --gc --print-roots` lists them: links under the
 * state dir, running processes' paths (`/proc/PID/...`, unless `runtimeRoots` is false) and
 * temporary roots (`{temp:PID}`); sorted.
 */
export function listRoots(
  store: LocalStore,
  options: Pick<LivenessOptions, "runtimeRoots"> = {},
): [string, string][] {
  const runtime = options.runtimeRoots ?? true ? [...findRuntimeRoots(store)] : [];
  const roots: [string, string][] = [...findRoots(store), ...runtime].flatMap(([path, links]) =>
    links.map((link): [string, string] => [link, path])
  );
  for (const [path, pids] of readTempRoots(store.stateDir)) {
    roots.push(...pids.map((pid): [string, string] => [`{temp:${pid}}`, path]));
  }
  return roots.sort(([a, p], [b, q]) => a < b ? -1 : a > b ? 1 : p < q ? -1 : p > q ? 1 : 0);
}

/** What keeps paths alive besides the roots under the state dir. */
export interface LivenessOptions {
  /** Keep the outputs of live derivations (default false, as Nix). */
  keepOutputs?: boolean;
  /** Keep the derivations of live outputs (default true, as Nix). */
  keepDerivations?: boolean;
  /** Root the paths running processes use, found in `/proc` (default true, as Nix). */
  runtimeRoots?: boolean;
}

/** Options of {@link collectGarbage}. */
export interface CollectOptions extends LivenessOptions {
  /** Stop once this many bytes (NAR sizes) are freed. */
  maxFreed?: number;
  /** Called before each path's files are removed. */
  onDelete?: (path: string) => void;
}

/** What a collection deleted. */
export interface GcResult {
  /** Invalidated paths and invalid leftovers removed, in the order they went. */
  deleted: string[];
  /** Sum of the NAR sizes of the invalidated paths. */
  bytesFreed: number;
}

/** Paths invalidated in one transaction before their files are removed. */
const BATCH_SIZE = 64;

/**
 * The valid paths that the roots keep alive, sorted: those under the state dir, the temporary
 * roots of running processes (see temp_roots.ts) and, unless turned off, the paths running
 * processes use (runtime_roots.ts).
 */
export function findLivePaths(store: LocalStore, options: LivenessOptions = {}): string[] {
  const keepDerivations = options.keepDerivations ?? true;
  const live = new Set<string>();
  // Temporary roots first: a process drops its own only after making the out-links that
  // replace them, so a root moving from one to the other is seen in one of the two.
  const queue = [...readTempRoots(store.stateDir).keys()];
  if (options.runtimeRoots ?? true) queue.push(...findRuntimeRoots(store).keys());
  queue.push(...findRoots(store).keys());
  const visit = (path: string) => {
    if (!live.has(path) && store.isValidPath(path)) queue.push(path);
  };
  while (queue.length > 0) {
    const path = queue.pop()!;
    if (live.has(path)) continue;
    const info = store.queryPathInfo(path);
    if (info === undefined) continue;
    live.add(path);
    for (const reference of info.references) visit(reference);
    if (keepDerivations && info.deriver !== undefined && store.isValidPath(info.deriver)) {
      const outputs = store.queryDerivationOutputs(info.deriver);
      if ([...outputs.values()].includes(path)) visit(info.deriver);
    }
    if (options.keepOutputs && path.endsWith(".drv")) {
      for (const output of store.queryDerivationOutputs(path).values()) visit(output);
    }
  }
  return [...live].sort();
}

/**
 * The dead paths, sorted: the valid paths no root keeps alive, and the entries of the store dir
 * named as store paths that are not valid (leftovers of a collection or a crash; as Nix lists
 * them) and that no running process roots.
 */
export function findDeadPaths(store: LocalStore, options: LivenessOptions = {}): string[] {
  const leftovers = findLeftovers(store, readTempRoots(store.stateDir));
  return [...findDeadValidPaths(store, options), ...leftovers].sort();
}

/**
 * Deletes dead paths (up to `maxFreed` bytes), then leftovers: entries of the store dir that are
 * not valid. Holds the GC lock throughout, so that no process adds a temporary root meanwhile.
 */
export async function collectGarbage(
  store: LocalStore,
  options: CollectOptions = {},
): Promise<GcResult> {
  using _gc = await lockGc(store.stateDir, true);
  const result = deleteInOrder(store, findDeadValidPaths(store, options), options);
  if (options.maxFreed !== undefined && result.bytesFreed >= options.maxFreed) return result;
  removeStaleTemps(store.physicalPath(store.storeDir));
  for (const path of findLeftovers(store, readTempRoots(store.stateDir))) {
    // A process adding the path holds its lock between moving it into place and registering it.
    await store.withPathLock([path], () => {
      if (!store.isValidPath(path)) {
        options.onDelete?.(path);
        removeTree(store.physicalPath(path));
        result.deleted.push(path);
      }
      return Promise.resolve();
    });
  }
  return result;
}

/**
 * The valid paths taken before the live ones: a path that becomes valid meanwhile (an output
 * of a build rooted by its temporary roots, seen invalid by the walk) is never a candidate.
 */
function findDeadValidPaths(store: LocalStore, options: LivenessOptions): string[] {
  const valid = store.queryAllValidPaths();
  const live = new Set(findLivePaths(store, options));
  return valid.filter((p) => !live.has(p));
}

/** Entries of the store dir named as store paths, neither valid nor temporary roots, sorted. */
function findLeftovers(store: LocalStore, tempRoots: ReadonlyMap<string, number[]>): string[] {
  const leftovers: string[] = [];
  for (const entry of Deno.readDirSync(store.physicalPath(store.storeDir))) {
    try {
      parseStorePathBaseName(entry.name);
    } catch {
      continue; // not a store path: kiln's temporaries and whatever else is not ours
    }
    const path = `${store.storeDir}/${entry.name}`;
    if (!store.isValidPath(path) && !tempRoots.has(path)) leftovers.push(path);
  }
  return leftovers.sort();
}

/**
 * Deletes `paths` (valid store paths) and nothing else. As Nix, a path that is live (unless
 * `ignoreLiveness`) or that a path outside `paths` refers to is refused with Nix's message, and
 * then nothing is deleted.
 */
export async function deletePaths(
  store: LocalStore,
  paths: readonly string[],
  options: LivenessOptions & { ignoreLiveness?: boolean; onDelete?: (path: string) => void } = {},
): Promise<GcResult> {
  using _gc = await lockGc(store.stateDir, true);
  const set = new Set(paths);
  for (const path of set) {
    if (!store.isValidPath(path)) throw new RangeError(`Path '${path}' is not valid`);
  }
  const live = new Set(options.ignoreLiveness ? [] : findLivePaths(store, options));
  for (const path of set) {
    if (live.has(path) || store.queryReferrers(path).some((r) => !set.has(r))) {
      throw new GcRefusedError(
        `Cannot delete path '${path}' since it is still alive. ` +
          "To find out why, use: nix-store --query --roots",
      );
    }
  }
  return deleteInOrder(store, [...set], options);
}

/** Refusal to delete a live path. */
export class GcRefusedError extends Error {
  override name = "GcRefusedError";
}

/** Invalidates and removes `paths` referrers first, in batches, up to `maxFreed` bytes. */
function deleteInOrder(
  store: LocalStore,
  paths: readonly string[],
  options: CollectOptions,
): GcResult {
  const result: GcResult = { deleted: [], bytesFreed: 0 };
  const order = referrersFirst(store, paths);
  for (let start = 0; start < order.length; start += BATCH_SIZE) {
    const batch: string[] = [];
    for (const path of order.slice(start, start + BATCH_SIZE)) {
      if (options.maxFreed !== undefined && result.bytesFreed >= options.maxFreed) break;
      batch.push(path);
      result.bytesFreed += store.queryPathInfo(path)?.narSize ?? 0;
    }
    if (batch.length === 0) break;
    store.invalidatePaths(batch);
    for (const path of batch) {
      options.onDelete?.(path);
      removeTree(store.physicalPath(path));
      result.deleted.push(path);
    }
  }
  return result;
}

/** `paths` ordered so that every path comes before the paths (among them) it refers to. */
function referrersFirst(store: LocalStore, paths: readonly string[]): string[] {
  const set = new Set(paths);
  const done = new Set<string>();
  const postorder: string[] = [];
  for (const start of [...paths].sort()) {
    const stack: { path: string; refs: string[] }[] = [];
    const push = (path: string) => {
      done.add(path);
      const refs = store.queryReferences(path).filter((r) => r !== path && set.has(r));
      stack.push({ path, refs });
    };
    if (done.has(start)) continue;
    push(start);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const next = top.refs.pop();
      if (next === undefined) {
        postorder.push(top.path);
        stack.pop();
      } else if (!done.has(next)) {
        push(next);
      }
    }
  }
  return postorder.reverse();
}
