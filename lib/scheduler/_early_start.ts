/**
 * The early start of dependents, all of its state for one run (see worker.ts): a build whose
 * outputs are final on disk gives back its slot and lets the dependents it is the last dependency
 * of start, while it hashes, checks and registers its outputs. Such a dependent learns through
 * `dependenciesRegistered` when it may register its own; its result is held back until that
 * dependency has settled, and if the dependency fails, the dependent is aborted and counts as
 * failed by its dependency.
 */

import type { Goal } from "./_graph.ts";
import type { Settled } from "./_outcome.ts";

const REGISTERED = Promise.resolve(true);
const NOT_STARTED = Promise.resolve(false);

/** A goal started early, by the dependency that let it start. */
interface Dependent {
  /** That dependency, until it settles. */
  dependency: Goal | undefined;
  /** Settles once the dependency has: true when it succeeded. */
  registered: PromiseWithResolvers<boolean>;
  /** Resolved once the goal is underway (see `BuildHooks.underway`) or has settled. */
  underway: PromiseWithResolvers<void>;
  /** How the goal's function settled, held back until the dependency has settled. */
  heldBack?: Settled;
  /** The dependency failed: the goal counts as failed by it, whatever it did. */
  doomed: boolean;
}

/** The early starts of one run. */
export class EarlyStart {
  /** Goals that gave back their slots early, with the dependents they let start. */
  readonly #released = new Map<Goal, Goal[]>();
  readonly #dependents = new Map<Goal, Dependent>();

  /** Whether `goal` gave back its slot early: its outputs are on disk, being registered. */
  released(goal: Goal): boolean {
    return this.#released.has(goal);
  }

  /**
   * Whether `goal` may give back its slot and start its dependents now: once only, and not while
   * its own dependency has not registered (nothing may build on its outputs yet).
   */
  mayRelease(goal: Goal): boolean {
    return !this.#released.has(goal) && !this.waiting(goal);
  }

  /** `goal` starts `dependents` early; the worker makes them ready. */
  release(goal: Goal, dependents: Goal[]): void {
    this.#released.set(goal, dependents);
    for (const dependent of dependents) {
      this.#dependents.set(dependent, {
        dependency: goal,
        registered: Promise.withResolvers(),
        underway: Promise.withResolvers(),
        doomed: false,
      });
    }
  }

  /**
   * Resolves to true once the dependents `goal` started early that took a slot are underway, to
   * false at once when it started none. One still queued is not waited for: it may wait for a slot
   * that this goal's own dependents hold while they wait for its registration.
   */
  underway(goal: Goal): Promise<boolean> {
    const started = this.#released.get(goal) ?? [];
    if (started.length === 0) return NOT_STARTED;
    const launched = started.filter((dependent) => dependent.state === "running");
    return Promise.all(launched.map((d) => this.#dependents.get(d)!.underway.promise))
      .then(() => true);
  }

  /** `BuildHooks.dependenciesRegistered` for `goal`. */
  dependenciesRegistered(goal: Goal): Promise<boolean> {
    return this.#dependents.get(goal)?.registered.promise ?? REGISTERED;
  }

  /** `BuildHooks.underway` for `goal`. */
  markUnderway(goal: Goal): void {
    this.#dependents.get(goal)?.underway.resolve();
  }

  /** Whether `goal` was started early and its dependency has not settled yet. */
  waiting(goal: Goal): boolean {
    return this.#dependents.get(goal)?.dependency !== undefined;
  }

  /** Whether `goal` was started early by a dependency that then failed. */
  doomed(goal: Goal): boolean {
    return this.#dependents.get(goal)?.doomed ?? false;
  }

  /**
   * `goal`'s function has settled as `settled`: true when that is held back until the dependency
   * that started it early settles.
   */
  holdBack(goal: Goal, settled: Settled): boolean {
    const dependent = this.#dependents.get(goal);
    if (dependent === undefined) return false;
    dependent.underway.resolve();
    if (dependent.dependency === undefined) return false;
    dependent.heldBack = settled;
    return true;
  }

  /** The dependents `goal` started early. */
  startedBy(goal: Goal): readonly Goal[] {
    return this.#released.get(goal) ?? [];
  }

  /**
   * The dependency that started `goal` early has settled: `goal` learns whether it may register.
   * Returns how `goal`'s function settled meanwhile, if it did.
   */
  dependencySettled(goal: Goal, succeeded: boolean): Settled | undefined {
    const dependent = this.#dependents.get(goal)!;
    dependent.dependency = undefined;
    dependent.doomed = !succeeded;
    dependent.registered.resolve(succeeded);
    const heldBack = dependent.heldBack;
    dependent.heldBack = undefined;
    return heldBack;
  }
}
