/** Reading back the build logs the derivation goals write (gzip, one per derivation). */

import { buildLogDir, buildLogPath } from "./derivation_goal.ts";

/** The decompressed log of the last build of `drvPath`, or undefined when there is none. */
export function openBuildLog(
  stateDir: string,
  drvPath: string,
): ReadableStream<Uint8Array> | undefined {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(buildLogPath(buildLogDir(stateDir), drvPath));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  return file.readable.pipeThrough(new DecompressionStream("gzip"));
}
