/**
 * Which outputs to substitute before building (Nix's `queryMissing`): walking down from the
 * targets, a derivation to build whose wanted, invalid outputs all have substitutes is
 * substituted instead of built, and its inputs are not visited, so nothing below it is built or
 * fetched for its sake.
 */

import type { SubstitutionPlan } from "../substituter/mod.ts";
import type { BuildPlan } from "./plan.ts";

/** The wanted outputs not yet valid of every derivation of `plan` that is to be built. */
export function missingOutputs(plan: BuildPlan): string[] {
  const paths = new Set<string>();
  for (const planned of plan.derivations.values()) {
    for (const name of planned.wanted) {
      if (!planned.valid.has(name)) paths.add(planned.outputPaths.get(name)!);
    }
  }
  return [...paths].sort();
}

/**
 * The output paths to substitute: those of the topmost derivations (seen from the targets) whose
 * missing outputs are all `substitutable`.
 */
export function substitutionFrontier(
  plan: BuildPlan,
  substitutable: (path: string) => boolean,
): string[] {
  return splitMissing(plan, substitutable).substitute;
}

/**
 * The frontier's output paths (`substitute`, sorted) and the derivations above it that are to be
 * built (`build`, in the order met).
 */
export function splitMissing(
  plan: BuildPlan,
  substitutable: (path: string) => boolean,
): { substitute: string[]; build: string[] } {
  const frontier = new Set<string>();
  const build: string[] = [];
  const seen = new Set<string>();
  const stack = [...plan.targets];
  while (stack.length > 0) {
    const drvPath = stack.pop()!;
    if (seen.has(drvPath)) continue;
    seen.add(drvPath);
    const node = plan.graph.get(drvPath);
    const planned = plan.derivations.get(drvPath);
    if (node === undefined || planned === undefined || node.valid) continue;
    const missing = [...planned.wanted].filter((name) => !planned.valid.has(name))
      .map((name) => planned.outputPaths.get(name)!);
    if (!planned.check && missing.length > 0 && missing.every(substitutable)) {
      for (const path of missing) frontier.add(path);
    } else {
      build.push(drvPath);
      stack.push(...node.dependencies);
    }
  }
  return { substitute: [...frontier].sort(), build };
}

/** The paths of `wanted` that some cache has, with every path of their closure. */
export function substitutablePaths(
  { graph, missing }: SubstitutionPlan,
  wanted: readonly string[],
): Set<string> {
  const ok = new Map<string, boolean>();
  // Iterative post-order (references have no cycles but self-references, which nodes omit).
  const check = (root: string): boolean => {
    const stack: [string, boolean][] = [[root, false]];
    while (stack.length > 0) {
      const [path, expanded] = stack.pop()!;
      if (ok.has(path)) continue;
      const node = graph.get(path);
      if (node === undefined || missing.has(path)) {
        ok.set(path, false);
      } else if (node.valid) {
        ok.set(path, true);
      } else if (!expanded) {
        stack.push([path, true], ...node.dependencies.map((d): [string, boolean] => [d, false]));
      } else {
        ok.set(path, node.dependencies.every((d) => ok.get(d) !== false));
      }
    }
    return ok.get(root)!;
  };
  return new Set(wanted.filter(check));
}
