/**
 * `kiln build --dry-run`: what the build would build and fetch, printed in Nix 2.8's words
 * (`printMissing`), on stderr. Nothing is built or fetched; only narinfos are read (and kept in
 * the narinfo disk cache, as Nix keeps them).
 */

import {
  type BuildPlan,
  missingOutputs,
  type MissingPaths,
  queryMissing,
  substitutablePaths,
} from "../../scheduler/mod.ts";
import type { LocalStore } from "../../store/mod.ts";
import { printStderr } from "../command.ts";
import type { Config } from "../config.ts";

/** Prints what building `plan` would do; `substitute`: ask the configured caches. Returns 0. */
export async function dryRun(
  plan: BuildPlan,
  options: { store: LocalStore; config: Config; substitute: boolean },
): Promise<number> {
  const { store, config } = options;
  const wanted = missingOutputs(plan);
  let missing: MissingPaths;
  if (
    !options.substitute || wanted.length === 0 ||
    config.settings.getList("substituters").length === 0
  ) {
    missing = queryMissing(plan);
  } else {
    const { openSubstituter } = await import("../substituters.ts");
    using handle = await openSubstituter(store, config);
    const planned = await handle.substituter.planSubstitution(wanted);
    missing = queryMissing(plan, {
      available: substitutablePaths(planned, wanted),
      graph: planned.graph,
      sizes: planned.narInfos,
    });
  }
  const lines = renderMissing(missing);
  if (lines.length > 0) printStderr(lines.join("\n"));
  return 0;
}

/** Nix 2.8's printMissing lines (none when nothing is missing). */
export function renderMissing(missing: MissingPaths): string[] {
  const lines: string[] = [];
  const { willBuild, willSubstitute } = missing;
  if (willBuild.length > 0) {
    lines.push(
      willBuild.length === 1
        ? "this derivation will be built:"
        : `these ${willBuild.length} derivations will be built:`,
      ...willBuild.map((path) => `  ${path}`),
    );
  }
  if (willSubstitute.length > 0) {
    const sizes = `${mebibytes(missing.downloadSize)} MiB download, ${
      mebibytes(missing.narSize)
    } MiB unpacked`;
    lines.push(
      willSubstitute.length === 1
        ? `this path will be fetched (${sizes}):`
        : `these ${willSubstitute.length} paths will be fetched (${sizes}):`,
      ...willSubstitute.map((path) => `  ${path}`),
    );
  }
  return lines;
}

/**
 * `bytes` in MiB as Nix prints them: converted to a C float, divided by 1024² (exact), then
 * `%.2f`, which rounds the exact binary value half to even (`toFixed` would round halves up).
 */
export function mebibytes(bytes: number): string {
  const scaled = BigInt(Math.fround(bytes)) * 100n;
  const divisor = 1024n * 1024n;
  let hundredths = scaled / divisor;
  const twice = (scaled % divisor) * 2n;
  if (twice > divisor || (twice === divisor && hundredths % 2n === 1n)) hundredths++;
  return `${hundredths / 100n}.${String(hundredths % 100n).padStart(2, "0")}`;
}
