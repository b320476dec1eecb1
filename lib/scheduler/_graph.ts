/**
 * The goal table for one run: the closure of the targets in the caller's graph, one goal per key,
 * each dependency edge once, checked for missing nodes and cycles, with critical-path priorities.
 * Everything here is O(V+E) and iterative, so a 20,000-deep chain does not touch the stack depth.
 */

import type { BuildResult, GoalKind } from "./build_result.ts";

/** One key of the caller's graph. */
export interface GoalNode {
  kind: GoalKind;
  /**
   * Keys that must be realised first: input derivations (and their outputs' substitutions) of a
   * build goal, the references of a substitute goal. Not followed when `valid` is set.
   */
  dependencies: readonly string[];
  /** The outputs are already valid: the goal is not run and its result is `already-valid`. */
  valid?: boolean;
  /** Output name -> store path, passed to an already-valid result. */
  outputs?: Readonly<Record<string, string>>;
}

/** The caller's graph; a `Map<string, GoalNode>` is one. */
export interface GoalGraph {
  get(key: string): GoalNode | undefined;
}

/** Where a goal is in its life. */
export type GoalState = "waiting" | "ready" | "running" | "done";

/** The worker's record for one key. */
export interface Goal {
  /** Discovery order: the last tie-breaker, so runs are deterministic. */
  readonly index: number;
  readonly path: string;
  readonly node: GoalNode;
  readonly dependencies: Goal[];
  readonly dependents: Goal[];
  /** Nodes on the longest chain of dependents above this goal (0 for a target nobody needs). */
  priority: number;
  /** Dependencies not yet settled. */
  pending: number;
  /** Dependencies that failed. */
  failedDependencies: number;
  state: GoalState;
  controller?: AbortController;
  startTime: number;
  result?: BuildResult;
  /** Scratch mark for the planning passes. */
  mark: number;
}

/** True when `a` should take a free slot before `b`: longest waiting chain first. */
export function runsBefore(a: Goal, b: Goal): boolean {
  return a.priority !== b.priority ? a.priority > b.priority : a.index < b.index;
}

/**
 * Builds the goal table for `targets`: goals in discovery order, dependencies linked both ways,
 * priorities set. Throws TypeError for a key the graph lacks, a bad kind or a dependency cycle.
 */
export function planGoals(graph: GoalGraph, targets: readonly string[]): Goal[] {
  const goals = new Map<string, Goal>();
  const order: Goal[] = [];
  const stack: Goal[] = [];
  const goalOf = (path: string, requiredBy?: Goal): Goal =>
    goals.get(path) ?? addGoal(path, requiredBy);
  const addGoal = (path: string, requiredBy?: Goal): Goal => {
    const node = graph.get(path);
    if (node === undefined) {
      throw new TypeError(
        requiredBy === undefined
          ? `Goal graph has no node for target '${path}'`
          : `Goal graph has no node for '${path}', a dependency of '${requiredBy.path}'`,
      );
    }
    if (node.kind !== "build" && node.kind !== "substitute") {
      throw new TypeError(`Goal graph node '${path}' has unknown kind '${node.kind}'`);
    }
    const goal: Goal = {
      index: order.length,
      path,
      node,
      dependencies: [],
      dependents: [],
      priority: 0,
      pending: 0,
      failedDependencies: 0,
      state: "waiting",
      startTime: 0,
      mark: -1,
    };
    goals.set(path, goal);
    order.push(goal);
    stack.push(goal);
    return goal;
  };

  for (const target of targets) goalOf(target);
  for (let goal = stack.pop(); goal !== undefined; goal = stack.pop()) {
    if (goal.node.valid) continue;
    for (const key of goal.node.dependencies) {
      const dependency = goalOf(key, goal);
      if (dependency.mark === goal.index) continue; // listed twice
      dependency.mark = goal.index;
      goal.dependencies.push(dependency);
      dependency.dependents.push(goal);
    }
  }
  setPriorities(order);
  return order;
}

/** Kahn's order (dependencies first), then longest dependent chains from the top down. */
function setPriorities(goals: Goal[]): void {
  const sorted: Goal[] = [];
  for (const goal of goals) {
    goal.pending = goal.dependencies.length;
    if (goal.pending === 0) sorted.push(goal);
  }
  for (let i = 0; i < sorted.length; i++) {
    for (const dependent of sorted[i].dependents) {
      if (--dependent.pending === 0) sorted.push(dependent);
    }
  }
  if (sorted.length < goals.length) throw cycleError(goals);
  for (let i = sorted.length - 1; i >= 0; i--) {
    const goal = sorted[i];
    let priority = 0;
    for (const dependent of goal.dependents) {
      if (dependent.priority >= priority) priority = dependent.priority + 1;
    }
    goal.priority = priority;
  }
}

/**
 * Names a key on a cycle. Goals Kahn's pass left have `pending > 0`, so each has a dependency that
 * was left too; following those must come back to a goal already seen, which is on a cycle.
 */
function cycleError(goals: Goal[]): TypeError {
  const visit = -2;
  let goal = goals.find((g) => g.pending > 0)!;
  while (goal.mark !== visit) {
    goal.mark = visit;
    goal = goal.dependencies.find((d) => d.pending > 0)!;
  }
  return new TypeError(`Goal graph has a dependency cycle through '${goal.path}'`);
}
