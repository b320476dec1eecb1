/**
 * What a build run would do, without doing it (Nix's `queryMissing`, for `--dry-run`): the
 * derivations it would build and the paths it would fetch, with their download and NAR sizes.
 */

import type { BuildPlan } from "./plan.ts";
import { splitMissing } from "./substitution_frontier.ts";

/** What the caches offer for a plan's missing outputs, as the substituter planned it. */
export interface SubstitutesOffered {
  /** Output paths whose whole closure is valid or substitutable. */
  available: ReadonlySet<string>;
  /** The closures of the outputs asked about: each path's references, valid or not. */
  graph: ReadonlyMap<string, { dependencies: readonly string[]; valid?: boolean }>;
  /** The sizes in each substitutable path's narinfo (`FileSize` may be absent). */
  sizes: ReadonlyMap<string, { fileSize?: number; narSize: number }>;
}

/** Nix's `willBuild`, `willSubstitute`, `downloadSize` and `narSize`. */
export interface MissingPaths {
  /** `.drv` paths to build, in Nix's order: each after the inputs among them. */
  willBuild: string[];
  /** Paths to fetch (outputs and what they reference that is not valid), sorted. */
  willSubstitute: string[];
  /** Bytes to download (the sum of `FileSize`s; 0 for a narinfo without one). */
  downloadSize: number;
  /** Bytes unpacked (the sum of `NarSize`s). */
  narSize: number;
}

/** What building `plan` would build and fetch, given what the caches offer (none: nothing). */
export function queryMissing(plan: BuildPlan, offered?: SubstitutesOffered): MissingPaths {
  const { substitute, build } = splitMissing(plan, (path) => offered?.available.has(path) ?? false);
  const fetch = new Set<string>();
  const stack = [...substitute];
  while (stack.length > 0) {
    const path = stack.pop()!;
    const node = offered?.graph.get(path);
    if (fetch.has(path) || node === undefined || node.valid) continue;
    fetch.add(path);
    stack.push(...node.dependencies);
  }
  let downloadSize = 0;
  let narSize = 0;
  for (const path of fetch) {
    const sizes = offered?.sizes.get(path);
    downloadSize += sizes?.fileSize ?? 0;
    narSize += sizes?.narSize ?? 0;
  }
  return {
    willBuild: inputsFirst(plan, build),
    willSubstitute: [...fetch].sort(),
    downloadSize,
    narSize,
  };
}

/**
 * `paths` as Nix's printMissing lists them (its topological sort, reversed): depth first from
 * each path in sorted order, through the sorted inputs among `paths`, each after its inputs.
 */
export function inputsFirst(plan: BuildPlan, paths: readonly string[]): string[] {
  const set = new Set(paths);
  const order: string[] = [];
  const seen = new Set<string>();
  for (const root of [...set].sort()) {
    // Iterative: a chain of derivations may be deeper than the call stack.
    const stack: [string, boolean][] = [[root, false]];
    while (stack.length > 0) {
      const [path, expanded] = stack.pop()!;
      if (expanded) {
        order.push(path);
        continue;
      }
      if (seen.has(path)) continue;
      seen.add(path);
      stack.push([path, true]);
      const inputs = [...plan.derivations.get(path)!.drv.inputDrvs.keys()].sort();
      for (const input of inputs.reverse()) if (set.has(input)) stack.push([input, false]);
    }
  }
  return order;
}
