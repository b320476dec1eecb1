/**
 * Closures of store paths computed in memory, with each path's references read from the store
 * once per run (a valid path's references never change) and recorded as soon as a build
 * registers them: an input closure then costs a walk over a map instead of a recursive query.
 */

import type { LocalStore } from "../store/mod.ts";

export class ClosureCache {
  readonly #store: LocalStore;
  readonly #references = new Map<string, readonly string[]>();

  constructor(store: LocalStore) {
    this.#store = store;
  }

  /** `roots` and everything they reference, sorted; throws a RangeError for an invalid path. */
  closure(roots: Iterable<string>): string[] {
    const seen = new Set<string>();
    const work = [...roots];
    for (let path = work.pop(); path !== undefined; path = work.pop()) {
      if (seen.has(path)) continue;
      seen.add(path);
      for (const reference of this.#referencesOf(path)) {
        if (!seen.has(reference)) work.push(reference);
      }
    }
    return [...seen].sort();
  }

  /** Records the references of a path just registered. */
  remember(path: string, references: readonly string[]): void {
    this.#references.set(path, references);
  }

  #referencesOf(path: string): readonly string[] {
    let references = this.#references.get(path);
    if (references === undefined) {
      const info = this.#store.queryPathInfo(path);
      if (info === undefined) throw new RangeError(`Path '${path}' is not valid`);
      references = info.references;
      this.#references.set(path, references);
    }
    return references;
  }
}
