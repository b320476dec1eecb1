/** Reading back the build logs the derivation goals write (gzip, one per derivation). */

import type { LocalStore } from "../store/mod.ts";
import { buildLogDir, buildLogPath } from "./derivation_goal.ts";

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
