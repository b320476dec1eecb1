/**
 * `kiln build`'s substitution step, before anything is built: asks the configured caches for the
 * missing outputs of the plan (narinfo lookups for whole closures go out in parallel), fetches
 * the outputs of the topmost substitutable derivations with their closures in the substitution
 * pool, and reports what could not be fetched. The caller then plans again: what arrived is
 * valid, and what did not is built (with `fallback`) or is an error.
 */

import {
  type BuildPlan,
  type BuildResult,
  missingOutputs,
  runGoals,
  substitutionFrontier,
} from "../scheduler/mod.ts";
import type { LocalStore } from "../store/mod.ts";
import type { SubstitutionPlan } from "../substituter/mod.ts";
import { printStderr } from "./command.ts";
import type { Config } from "./config.ts";

/**
 * The failed substitutions (empty when everything wanted arrived), or undefined when nothing was
 * fetched at all, so that the plan still holds.
 */
export async function substituteOutputs(
  store: LocalStore,
  config: Config,
  plan: BuildPlan,
  signal: AbortSignal,
): Promise<BuildResult[] | undefined> {
  const wanted = missingOutputs(plan);
  if (wanted.length === 0 || config.settings.getList("substituters").length === 0) return undefined;
  // The binary cache modules load only when there are caches to ask.
  const { openSubstituter } = await import("./substituters.ts");
  using handle = await openSubstituter(store, config);
  const { substituter } = handle;
  if (substituter.caches.length === 0) return undefined;
  const available = substitutablePaths(await substituter.planSubstitution(wanted), wanted);
  const frontier = substitutionFrontier(plan, (path) => available.has(path));
  if (frontier.length === 0) return undefined;
  const fetch = await substituter.planSubstitution(frontier);
  const results = await runGoals(fetch.graph, frontier, {
    build: (path) => Promise.reject(new Error(`Internal error: cannot build '${path}' here`)),
    substitute: (path, signal) => substituter.substitutePath(path, signal),
    maxSubstitutionJobs: config.settings.getInt("max-substitution-jobs"),
    signal,
    onEvent: (event) => {
      if (event.type !== "started") return;
      const info = fetch.narInfos.get(event.path);
      printStderr(`copying path '${event.path}'${info ? ` (${info.narSize} bytes)` : ""}...`);
    },
  });
  return [...results.values()].filter((r) => r.status === "failed");
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
