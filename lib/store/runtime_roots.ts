/**
 * Runtime roots, as Nix 2.8's findRuntimeRoots: the store paths running processes use, read from
 * `/proc`: each process's executable, working directory and open files (`exe`, `cwd`, `fd/*`),
 * the files it has mapped (`maps`) and the store paths named in its environment (`environ`).
 * A process that is gone or that this one may not inspect is passed over.
 */

import type { LocalStore } from "./local_store.ts";
import { type Roots, toStorePath } from "./roots.ts";

/** The valid store paths running processes use, each with the `/proc` entries naming it. */
export function findRuntimeRoots(store: LocalStore): Roots {
  // Where the files are: a store dir whose files live elsewhere is another store (the host's).
  const dir = store.physicalPath(store.storeDir).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const pattern = new RegExp(`${dir}/[0-9a-z]+[0-9a-zA-Z+\\-._?=]*`, "g");
  const roots: Roots = new Map();
  const scan = (source: string, text: string | undefined) => {
    for (const match of text?.matchAll(pattern) ?? []) {
      const path = toStorePath(store, match[0]);
      if (path === undefined || !store.isValidPath(path)) continue;
      const sources = roots.get(path) ?? [];
      if (!sources.includes(source)) roots.set(path, [...sources, source].sort());
    }
  };
  for (const entry of readDirIfThere("/proc")) {
    if (!/^[0-9]+$/.test(entry.name)) continue;
    const pidDir = `/proc/${entry.name}`;
    const fds = readDirIfThere(`${pidDir}/fd`).map((fd) => `${pidDir}/fd/${fd.name}`);
    for (const link of [`${pidDir}/exe`, `${pidDir}/cwd`, ...fds]) {
      scan(link, quietly(Deno.readLinkSync, link));
    }
    for (const file of [`${pidDir}/maps`, `${pidDir}/environ`]) {
      scan(file, quietly(Deno.readTextFileSync, file));
    }
  }
  return roots;
}

function readDirIfThere(dir: string): Deno.DirEntry[] {
  return quietly((d) => [...Deno.readDirSync(d)], dir) ?? [];
}

/** `read(path)`, or undefined when the process is gone or is not ours to inspect. */
function quietly<T>(read: (path: string) => T, path: string): T | undefined {
  try {
    return read(path);
  } catch (e) {
    const gone = e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied;
    // ESRCH (the process ended while its entries were read) has no class of its own.
    if (gone || (e instanceof Error && /ESRCH|No such process/.test(e.message))) return undefined;
    throw e;
  }
}
