/**
 * How long a run still takes, from history: each build takes as long as its derivation name took
 * the last time here (a running build, what is left of that), and the run takes as long as its
 * longest chain of builds still to finish (slots are not counted: an estimate, not a schedule).
 * No estimate while a build still to finish has no recorded duration. The durations are recorded
 * by derivation name in the store's database at the end of each run.
 */

import type { LocalStore } from "../store/mod.ts";
import type { BuildResult } from "./build_result.ts";
import type { SchedulerEvent } from "./events.ts";
import type { BuildPlan } from "./plan.ts";
import type { GoalGraph } from "./worker.ts";

/** Estimates a run's remaining time as its builds start and finish. */
export class Estimator {
  readonly #graph: GoalGraph;
  /** Build goals not finished yet, with their expected duration (ms). */
  readonly #pending = new Map<string, number>();
  /** Start time (ms) of each running build. */
  readonly #running = new Map<string, number>();
  readonly #dependents = new Map<string, string[]>();
  #complete = true;

  /** `builds`: the build goals to run; `durations`: recorded durations by path, where known. */
  constructor(
    graph: GoalGraph,
    builds: readonly string[],
    durations: (path: string) => number | undefined,
  ) {
    this.#graph = graph;
    for (const path of builds) {
      const ms = durations(path);
      if (ms === undefined) this.#complete = false;
      this.#pending.set(path, ms ?? 0);
    }
    for (const path of builds) {
      for (const dependency of graph.get(path)!.dependencies) {
        if (!this.#pending.has(dependency)) continue;
        let list = this.#dependents.get(dependency);
        if (list === undefined) this.#dependents.set(dependency, list = []);
        list.push(path);
      }
    }
  }

  /** Follows the worker's event (`now` in ms). */
  update(event: SchedulerEvent, now: number): void {
    if (event.kind !== "build") return;
    if (event.type === "started") this.#running.set(event.path, now);
    else {
      this.#running.delete(event.path);
      this.#pending.delete(event.path);
    }
  }

  /** Milliseconds the run still takes at `now`, or undefined without a full history. */
  remaining(now: number): number | undefined {
    if (!this.#complete) return undefined;
    // Longest chain upwards from each pending build: dependents first (reverse topological).
    const order = this.#topological();
    const chain = new Map<string, number>();
    let longest = 0;
    for (let i = order.length - 1; i >= 0; i--) {
      const path = order[i];
      const started = this.#running.get(path);
      const own = this.#pending.get(path)!;
      const left = started === undefined ? own : Math.max(0, own - (now - started));
      let above = 0;
      for (const dependent of this.#dependents.get(path) ?? []) {
        above = Math.max(above, chain.get(dependent) ?? 0);
      }
      chain.set(path, left + above);
      longest = Math.max(longest, left + above);
    }
    return longest;
  }

  /** The pending builds, each after its pending dependencies. */
  #topological(): string[] {
    const waiting = new Map<string, number>();
    const ready: string[] = [];
    for (const path of this.#pending.keys()) {
      let count = 0;
      for (const dependency of this.#graph.get(path)!.dependencies) {
        if (this.#pending.has(dependency)) count++;
      }
      waiting.set(path, count);
      if (count === 0) ready.push(path);
    }
    const order: string[] = [];
    for (let path = ready.pop(); path !== undefined; path = ready.pop()) {
      order.push(path);
      for (const dependent of this.#dependents.get(path) ?? []) {
        if (!this.#pending.has(dependent)) continue;
        const left = waiting.get(dependent)! - 1;
        waiting.set(dependent, left);
        if (left === 0) ready.push(dependent);
      }
    }
    return order;
  }
}

/**
 * Feeds the worker's events to an {@link Estimator} over the builds of `plan`, and passes on an
 * estimate at the first event and then at most once a second.
 */
export function estimator(
  store: LocalStore,
  plan: BuildPlan,
): (event: SchedulerEvent, emit: (remaining: number, at: number) => void) => void {
  const builds = [...plan.derivations.keys()].filter((p) => !plan.graph.get(p)!.valid);
  const nameOf = (path: string) => plan.derivations.get(path)!.drv.name;
  const times = store.queryBuildTimes([...new Set(builds.map(nameOf))]);
  const estimator = new Estimator(plan.graph, builds, (path) => times.get(nameOf(path)));
  let last = -Infinity;
  return (event, emit) => {
    const now = Date.now();
    estimator.update(event, now);
    if (now - last < 1000) return;
    last = now;
    const remaining = estimator.remaining(now);
    if (remaining !== undefined) emit(remaining, now);
  };
}

/** Records how long each build of the run took, by derivation name, for later estimates. */
export function recordBuildTimes(
  store: LocalStore,
  plan: BuildPlan,
  results: ReadonlyMap<string, BuildResult>,
): void {
  const times = new Map<string, number>();
  for (const [path, result] of results) {
    const planned = plan.derivations.get(path);
    if (planned === undefined || result.status !== "built") continue;
    times.set(planned.drv.name, result.stopTime - result.startTime);
  }
  store.recordBuildTimes(times);
}
