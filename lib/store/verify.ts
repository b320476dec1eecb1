/**
 * The store's database against its disk, as Nix 2.8's `LocalStore::verifyStore`: every valid
 * path must exist (a missing one with no valid referrers is dropped from the database, one with
 * valid referrers is an error), and with `checkContents` every `.links` entry must hash to its
 * name and every valid path's NAR to the hash recorded for it. Problems are reported as events in
 * Nix's order; repairing is the caller's (a store cannot build nor substitute).
 */

import { join } from "node:path";
import type { Hash } from "../hashing/mod.ts";
import type { LocalStore } from "./local_store.ts";
import { hashPath } from "./nar_fs.ts";
import { LINKS_DIR } from "./optimise.ts";
import { pathExists } from "./_fs.ts";

/** What {@link verifyStore} reports, in the order Nix prints it. */
export type VerifyEvent =
  | { type: "phase"; phase: "reading" | "existence" | "links" | "contents" }
  /** A valid path is not on disk: dropped from the database when nothing valid refers to it. */
  | { type: "disappeared"; path: string; invalidated: boolean }
  | { type: "link-modified"; link: string; expected: string; got: string }
  | { type: "link-removed"; link: string }
  | { type: "modified"; path: string; expected: Hash; got: Hash }
  | { type: "size-updated"; path: string; size: number }
  /** Repairing `path` failed, or another error while checking it. */
  | { type: "failed"; path: string; error: Error };

/** Options of {@link verifyStore}. */
export interface VerifyOptions {
  /** Rehash `.links` and every checked path's contents (slow). */
  checkContents?: boolean;
  /** Only these valid paths (each must be valid), rather than the whole store and `.links`. */
  paths?: string[];
  /**
   * Puts a missing or modified path right (rebuild, substitute), throwing when it cannot. With
   * it, a corrupt `.links` entry is removed.
   */
  repair?: (path: string) => Promise<void>;
  onEvent?: (event: VerifyEvent) => void;
}

/** Checks the store as `nix-store --verify` does; returns whether errors are left unrepaired. */
export async function verifyStore(
  store: LocalStore,
  options: VerifyOptions = {},
): Promise<boolean> {
  const emit = options.onEvent ?? (() => {});
  const storeDir = store.physicalPath(store.storeDir);
  const all = options.paths === undefined;
  let errors = false;
  const fail = (path: string, error: unknown) => {
    emit({
      type: "failed",
      path,
      error: error instanceof Error ? error : new Error(String(error)),
    });
    errors = true;
  };
  const repair = async (path: string) => {
    if (options.repair === undefined) errors = true;
    else await options.repair(path).catch((e) => fail(path, e));
  };

  const roots = options.paths ?? store.queryAllValidPaths();
  for (const path of roots) {
    if (!store.isValidPath(path)) throw new RangeError(`Path '${path}' is not valid`);
  }
  emit({ type: "phase", phase: "reading" });
  const onDisk = all ? new Set(Array.from(Deno.readDirSync(storeDir), (e) => e.name)) : undefined;
  const exists = (path: string) =>
    onDisk?.has(path.slice(store.storeDir.length + 1)) ?? pathExists(store.physicalPath(path));

  emit({ type: "phase", phase: "existence" });
  const done = new Set<string>();
  const present = new Set<string>();
  const toRepair: string[] = [];
  const visit = (path: string): void => {
    if (done.has(path)) return;
    done.add(path);
    if (exists(path)) {
      present.add(path);
      return;
    }
    // Referrers first: when none of them stays valid, this path can go too.
    let canInvalidate = true;
    for (const referrer of store.queryReferrers(path)) {
      if (referrer === path) continue;
      visit(referrer);
      if (present.has(referrer)) canInvalidate = false;
    }
    if (canInvalidate) {
      try {
        store.invalidatePaths([path]);
      } catch (e) {
        if (!(e instanceof RangeError)) throw e;
        canInvalidate = false; // a referrer that is missing too but could not go
      }
    }
    if (!canInvalidate) toRepair.push(path);
    emit({ type: "disappeared", path, invalidated: canInvalidate });
  };
  for (const path of roots) visit(path);
  for (const path of toRepair) await repair(path);
  if (!options.checkContents) return errors;

  if (all) {
    emit({ type: "phase", phase: "links" });
    errors = checkLinks(join(storeDir, LINKS_DIR), options.repair !== undefined, emit) || errors;
  }
  emit({ type: "phase", phase: "contents" });
  // Only the paths asked for: the referrers visited on the way were checked for existence only.
  const wanted = new Set(roots);
  for (const path of [...present].filter((p) => wanted.has(p)).sort()) {
    try {
      const info = store.queryPathInfo(path);
      if (info === undefined) continue; // deleted meanwhile
      const current = hashPath(store.physicalPath(path), info.narHash.algorithm);
      if (!current.hash.equals(info.narHash)) {
        emit({ type: "modified", path, expected: info.narHash, got: current.hash });
        await repair(path);
      } else if (info.narSize === 0) {
        store.registerValidPaths([{ ...info, narSize: current.size }]);
        emit({ type: "size-updated", path, size: current.size });
      }
    } catch (e) {
      fail(path, e);
    }
  }
  return errors;
}

/** Rehashes every `.links` entry; with `repair` a wrong one is removed. Returns whether errors. */
function checkLinks(dir: string, repair: boolean, emit: (e: VerifyEvent) => void): boolean {
  let errors = false;
  let names: string[];
  try {
    names = Array.from(Deno.readDirSync(dir), (e) => e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
  for (const name of names) {
    const link = join(dir, name);
    const got = hashPath(link).hash.toString("nix32");
    if (got === name) continue;
    emit({ type: "link-modified", link, expected: name, got });
    if (repair) {
      Deno.removeSync(link);
      emit({ type: "link-removed", link });
    } else {
      errors = true;
    }
  }
  return errors;
}
