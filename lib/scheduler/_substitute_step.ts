/**
 * A build run's substitution step, before anything is built: asks the caches for the missing
 * outputs of the plan (narinfo lookups for whole closures go out in parallel), fetches the outputs
 * of the topmost substitutable derivations with their closures in the substitution pool, and
 * reports what could not be fetched. The run then plans again: what arrived is valid, and what
 * did not is built (with `fallback`) or is an error.
 */

import type { Substituter } from "../substituter/mod.ts";
import type { BuildResult } from "./build_result.ts";
import type { SchedulerEvent } from "./events.ts";
import type { BuildPlan } from "./plan.ts";
import {
  missingOutputs,
  substitutablePaths,
  substitutionFrontier,
} from "./substitution_frontier.ts";
import { runGoals } from "./worker.ts";
import { InternalError } from "../sys/mod.ts";

/** The caches of a run, opened only when there is something to ask them for. */
export interface SubstitutionOptions {
  /** Opens the caches; what it returns is disposed of when the step ends. */
  open(): Promise<{ substituter: Substituter } & Disposable>;
  /** `max-substitution-jobs`. */
  maxJobs: number;
  /** Build what could not be substituted (else the run fails before building anything). */
  fallback: boolean;
}

/**
 * Substitutes what the caches have of `plan`'s missing outputs. Returns the failed substitutions
 * (empty when everything wanted arrived), or undefined when nothing was fetched at all, so that
 * the plan still holds. `onEvent` gets each substitution's NAR size where the cache said it.
 */
export async function substituteOutputs(
  plan: BuildPlan,
  options: SubstitutionOptions,
  run: { signal: AbortSignal; onEvent: (event: SchedulerEvent, narSize?: number) => void },
): Promise<BuildResult[] | undefined> {
  const wanted = missingOutputs(plan);
  if (wanted.length === 0) return undefined;
  using handle = await options.open();
  const { substituter } = handle;
  if (substituter.caches.length === 0) return undefined;
  const available = substitutablePaths(await substituter.planSubstitution(wanted), wanted);
  const frontier = substitutionFrontier(plan, (path) => available.has(path));
  if (frontier.length === 0) return undefined;
  const fetch = await substituter.planSubstitution(frontier);
  const results = await runGoals(fetch.graph, frontier, {
    build: (path) => Promise.reject(new InternalError(`cannot build '${path}' here`)),
    substitute: (path, signal) => substituter.substitutePath(path, signal),
    maxSubstitutionJobs: options.maxJobs,
    signal: run.signal,
    onEvent: (event) => run.onEvent(event, fetch.narInfos.get(event.path)?.narSize),
  });
  return [...results.values()].filter((r) => r.status === "failed");
}
