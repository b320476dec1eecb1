/**
 * The layout of build logs, one gzip file per derivation as the derivation goals write them, and
 * reading one back.
 */

import { basename, join } from "node:path";
import type { LocalStore } from "../store/mod.ts";

/** The extension of kiln's build logs: gzip, as node:zlib and Web Streams have no bzip2. */
export const LOG_FILE_EXTENSION = ".gz";

/** The directory of build logs in a store's state dir (Nix: `/nix/var/log/nix/drvs`). */
export function buildLogDir(stateDir: string): string {
  return join(stateDir, "log", "drvs");
}

/** Where the log of `drvPath` is kept under `logDir`. */
export function buildLogPath(logDir: string, drvPath: string): string {
  const base = basename(drvPath);
  return join(logDir, base.slice(0, 2), base.slice(2) + LOG_FILE_EXTENSION);
}

/**
 * The decompressed log of the last build of `drvPath`, or undefined when there is none. A build
 * whose builder printed nothing leaves no file: its log is empty when `store` says it built the
 * derivation (an output valid, derived from it, built here).
 */
export function openBuildLog(
  stateDir: string,
  drvPath: string,
  store: LocalStore,
): ReadableStream<Uint8Array> | undefined {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(buildLogPath(buildLogDir(stateDir), drvPath));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    return builtHere(store, drvPath) ? new Blob().stream() : undefined;
  }
  return file.readable.pipeThrough(new DecompressionStream("gzip"));
}

function builtHere(store: LocalStore, drvPath: string): boolean {
  if (!store.isValidPath(drvPath)) return false;
  for (const output of store.queryDerivationOutputs(drvPath).values()) {
    const info = store.queryPathInfo(output);
    if (info?.deriver === drvPath && info.ultimate) return true;
  }
  return false;
}
