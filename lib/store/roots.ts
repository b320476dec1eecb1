/**
 * Garbage-collector roots, as Nix keeps them under its state dir: `gcroots/` and `profiles/`
 * searched recursively, where a symlink into the store is a root, and a symlink elsewhere is
 * followed once (an indirect root: `gcroots/auto/<sha1 of the link>` points at an
 * out-link such as `./result`, which points into the store). An indirect root whose out-link is
 * gone is removed. A link may point at the logical store path or at its physical place.
 */

import { dirname, join, resolve } from "node:path";
import { hashBytes, parseStorePathBaseName } from "../hashing/mod.ts";
import { pathExists } from "./_fs.ts";
import type { LocalStore } from "./local_store.ts";

/** Valid store path -> the links (out-links, files under gcroots) that root it, sorted. */
export type Roots = Map<string, string[]>;

/** The valid store paths rooted under `store`'s state dir, each with the links that root it. */
export function findRoots(store: LocalStore): Roots {
  const roots: Roots = new Map();
  const found = (link: string, target: string) => {
    const path = toStorePath(store, target);
    if (path === undefined || !store.isValidPath(path)) return;
    const links = roots.get(path) ?? [];
    if (!links.includes(link)) links.push(link);
    roots.set(path, links.sort());
  };
  const auto = join(store.stateDir, "gcroots", "auto");
  const onLink = (link: string, target: string) => {
    if (toStorePath(store, target) !== undefined) return found(link, target);
    if (!pathExists(target)) {
      if (link.startsWith(auto + "/")) Deno.removeSync(link); // stale
      return;
    }
    const next = readLinkIfThere(target);
    if (next !== undefined) found(target, next);
  };
  walk(join(store.stateDir, "gcroots"), onLink);
  walk(join(store.stateDir, "profiles"), onLink);
  return roots;
}

/**
 * Makes `link` a symlink to valid store path `path` (its physical place) and registers it as an
 * indirect root under `gcroots/auto`, as `nix-store --add-root LINK --realise PATH` does. An
 * existing symlink at `link` is replaced atomically. As Nix, the path is a temporary root first:
 * a collection running meanwhile (which may have read the roots already) does not take it.
 */
export async function addPermRoot(store: LocalStore, link: string, path: string): Promise<void> {
  await store.addTempRoots([path]);
  if (!store.isValidPath(path)) throw new RangeError(`Path '${path}' is not valid`);
  replaceSymlink(resolve(link), store.physicalPath(path));
  addIndirectRoot(store, link);
}

/** Registers symlink `link` (outside the store) as an indirect root: `gcroots/auto/<hash>`. */
export function addIndirectRoot(store: LocalStore, link: string): void {
  const absolute = resolve(link);
  const name = hashBytes("sha1", absolute).toString("nix32");
  const auto = join(store.stateDir, "gcroots", "auto");
  Deno.mkdirSync(auto, { recursive: true });
  replaceSymlink(join(auto, name), absolute);
}

/** Points `link` at `target`, replacing an existing symlink atomically. */
export function replaceSymlink(link: string, target: string): void {
  const temp = `${link}.tmp-${Deno.pid}`;
  try {
    Deno.removeSync(temp);
  } catch {
    // not there
  }
  Deno.symlinkSync(target, temp);
  Deno.renameSync(temp, link);
}

/** The store path that `target` (logical or physical, maybe a file inside one) lies in. */
export function toStorePath(store: LocalStore, target: string): string | undefined {
  for (const dir of [store.storeDir, store.physicalPath(store.storeDir)]) {
    if (!target.startsWith(dir + "/")) continue;
    const base = target.slice(dir.length + 1).split("/")[0];
    try {
      parseStorePathBaseName(base);
    } catch {
      return undefined;
    }
    return `${store.storeDir}/${base}`;
  }
  return undefined;
}

/** Calls `onLink(link, absolute target)` for every symlink under `dir`, recursively. */
function walk(dir: string, onLink: (link: string, target: string) => void): void {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return;
    throw e;
  }
  for (const entry of entries.sort((a, b) => a.name < b.name ? -1 : 1)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) walk(path, onLink);
    else if (entry.isSymlink) {
      const target = readLinkIfThere(path); // a link being replaced may be gone already
      if (target !== undefined) onLink(path, target);
    }
  }
}

/** Where symlink `link` points, or undefined when it is gone or not a symlink. */
function readLinkIfThere(link: string): string | undefined {
  try {
    return Deno.lstatSync(link).isSymlink ? readLinkAbsolute(link) : undefined;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

function readLinkAbsolute(link: string): string {
  return resolve(dirname(link), Deno.readLinkSync(link));
}
