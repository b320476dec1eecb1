/**
 * What `buildDone` and `registerOutputs` do with a round's outputs: find and canonicalise them,
 * scan them, check them (the fixed-output hash, `--check`'s comparison, the output checks, the
 * comparison of rounds), and move them into place and register them in one transaction, deriver =
 * the `.drv`, ultimate.
 */

import { basename } from "node:path";
import { makeFixedOutputPath, outputPathName, renderContentAddress } from "../hashing/mod.ts";
import { pathExists, type PathInfo, removeTree } from "../store/mod.ts";
import type { FailureOutcome } from "./build_result.ts";
import type { PlannedDerivation } from "./plan.ts";
import type { DerivationGoalContext, Staged } from "./_build_attempt.ts";
import { outputLocation, type Round } from "./_build_round.ts";
import {
  canonicaliseTree,
  checkOutputs,
  fixedOutputMismatch,
  type Rejected,
  type ScannedOutput,
  scanOutput,
} from "./_outputs.ts";

export function failure(reason: FailureOutcome["reason"], message: string): FailureOutcome {
  return { status: "failed", reason, message };
}

/**
 * Where each examined output of a successful round is, canonicalised (final from then on); a
 * rejection when one is missing or holds a file a store cannot.
 */
export function outputLocations(
  planned: PlannedDerivation,
  round: Round,
  examined: string[],
  context: DerivationGoalContext,
): Map<string, string> | Rejected {
  const locations = new Map<string, string>();
  for (const name of examined) {
    const path = planned.outputPaths.get(name)!;
    const location = outputLocation(context.store, round, path);
    if (!pathExists(location)) {
      return {
        rejected:
          `builder for '${planned.path}' failed to produce output path for output '${name}' at '${path}'`,
      };
    }
    const rejected = canonicaliseTree(location);
    if (rejected !== undefined) return rejected;
    locations.set(name, location);
  }
  return locations;
}

/** Scans the canonicalised outputs at `locations`; a failure when one is bad. */
export function collect(
  planned: PlannedDerivation,
  locations: Map<string, string>,
  candidates: Map<string, string>,
): Staged | FailureOutcome {
  const staged: Staged = { scanned: new Map(), locations };
  for (const [name, location] of locations) {
    const path = planned.outputPaths.get(name)!;
    const output = planned.drv.outputs.get(name)!;
    const scanned = scanOutput(location, path, {
      candidates,
      fixed: output.kind === "fixed" ? output : undefined,
    });
    if ("rejected" in scanned) return failure("output-rejected", scanned.rejected);
    staged.scanned.set(name, scanned);
  }
  return staged;
}

/** After the first round: the fixed-output hash, `--check`'s comparison, the output checks. */
export async function firstRoundProblem(
  planned: PlannedDerivation,
  staged: Staged,
  context: DerivationGoalContext,
): Promise<FailureOutcome | undefined> {
  const { store } = context;
  for (const [name, scanned] of staged.scanned) {
    const output = planned.drv.outputs.get(name)!;
    if (output.kind !== "fixed") continue;
    const mismatch = fixedOutputMismatch(planned.path, output, scanned.contentHash!);
    if (mismatch === undefined) continue;
    if (!planned.check) {
      await registerUnderContentAddress(planned, name, staged, context);
    }
    return failure("hash-mismatch", mismatch);
  }
  if (planned.check) {
    const registered = new Map(
      [...staged.scanned].map(([name, s]) => [name, { ...s, ...store.queryPathInfo(s.path)! }]),
    );
    const problem = compareRounds(planned.path, registered, staged.scanned);
    if (problem !== undefined && context.settings.keepFailed) {
      for (const [name, scanned] of staged.scanned) {
        if (scanned.narHash.equals(registered.get(name)!.narHash)) continue;
        const kept = store.physicalPath(scanned.path) + ".check";
        removeTree(kept);
        Deno.renameSync(staged.locations.get(name)!, kept);
        problem.message += ` from '${scanned.path}.check'`;
        break;
      }
    }
    return problem;
  }
  const rejected = checkOutputs(planned.path, planned.drv, staged.scanned, store);
  return rejected === undefined ? undefined : failure("output-rejected", rejected.rejected);
}

/** `derivation '<drv>' may not be deterministic: output '<path>' differs` at the first change. */
export function compareRounds(
  drvPath: string,
  before: ReadonlyMap<string, Pick<ScannedOutput, "path" | "narHash">>,
  after: ReadonlyMap<string, ScannedOutput>,
): FailureOutcome | undefined {
  for (const [name, scanned] of after) {
    const old = before.get(name);
    if (old !== undefined && !old.narHash.equals(scanned.narHash)) {
      return failure(
        "check-mismatch",
        `derivation '${drvPath}' may not be deterministic: output '${scanned.path}' differs`,
      );
    }
  }
  return undefined;
}

/**
 * A fixed output with the wrong hash is still registered, under the path its contents give (as
 * Nix 2.8 does), so that the download need not be repeated to inspect it.
 */
async function registerUnderContentAddress(
  planned: PlannedDerivation,
  name: string,
  staged: Staged,
  context: DerivationGoalContext,
): Promise<void> {
  const { store } = context;
  const output = planned.drv.outputs.get(name)!;
  if (output.kind !== "fixed" || output.method === "text") return;
  const scanned = staged.scanned.get(name)!;
  const hash = scanned.contentHash!;
  const path = makeFixedOutputPath(store.storeDir, {
    method: output.method,
    hash,
    name: outputPathName(planned.drv.name, name),
  });
  await store.withPathLock([path], () => {
    if (store.isValidPath(path)) return Promise.resolve();
    const dest = store.physicalPath(path);
    removeTree(dest);
    Deno.renameSync(staged.locations.get(name)!, dest);
    store.registerValidPaths([{
      ...pathInfo(planned.path, scanned),
      path,
      references: [],
      ca: renderContentAddress(output.method, hash),
    }]);
    return Promise.resolve();
  });
}

/** Moves the staged outputs into place and registers them in one transaction; returns them. */
export function register(
  planned: PlannedDerivation,
  staged: Staged,
  validNow: Set<string>,
  context: DerivationGoalContext,
): PathInfo[] {
  const { store } = context;
  const infos: PathInfo[] = [];
  const moved: string[] = [];
  for (const [name, scanned] of staged.scanned) {
    if (validNow.has(name)) continue;
    const dest = store.physicalPath(scanned.path);
    const location = staged.locations.get(name)!;
    if (location !== dest) replacePath(location, dest, context);
    moved.push(dest);
    const info = pathInfo(planned.path, scanned);
    const output = planned.drv.outputs.get(name)!;
    if (output.kind === "fixed" && output.method !== "text") {
      info.ca = renderContentAddress(output.method, output.hash);
    }
    infos.push(info);
  }
  try {
    store.registerValidPaths(infos);
  } catch (error) {
    for (const path of moved) removeTree(path);
    throw error;
  }
  return infos;
}

/** Renames `from` to `to`; an existing `to` (a corrupt path being repaired) is swapped out. */
function replacePath(from: string, to: string, context: DerivationGoalContext): void {
  if (!pathExists(to)) {
    Deno.renameSync(from, to);
    return;
  }
  const old = context.store.makeTempPath(basename(to));
  Deno.renameSync(to, old);
  Deno.renameSync(from, to);
  removeTree(old);
}

/** The record of a built output: ultimate (built here), unsigned. */
function pathInfo(deriver: string, scanned: ScannedOutput): PathInfo {
  const { path, narHash, narSize, references } = scanned;
  const registrationTime = Math.floor(Date.now() / 1000);
  return {
    path,
    narHash,
    narSize,
    references,
    deriver,
    registrationTime,
    signatures: [],
    ultimate: true,
  };
}
