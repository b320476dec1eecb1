/** The functions the worker runs for its goals, and what it offers a running build. */

import type { BuildOutcome, SubstituteOutcome } from "./build_result.ts";

/** Builds the derivation `drvPath`; should settle soon after `signal` aborts. */
export type BuildFunction = (
  drvPath: string,
  signal: AbortSignal,
  hooks: BuildHooks,
) => Promise<BuildOutcome>;

/** What the worker offers a running build besides its signal. */
export interface BuildHooks {
  /**
   * The outputs are final on disk (not yet registered): dependents may start now, and this
   * build's slot is free. Resolves to true when dependents were started, once those that took a
   * slot are underway (so that they reach their builders before this build's checks go on), to
   * false at once when none were. Ignored after the first call, and before this build's own
   * `dependenciesRegistered` has settled.
   */
  outputsReady(): Promise<boolean>;
  /**
   * This build has gone as far as it can on its own: its builder runs, or it waits for
   * `dependenciesRegistered` first. The dependency that started it early waits for this (or for
   * the build to settle) before it goes on with its checks.
   */
  underway(): void;
  /**
   * Settles true once the dependencies are all registered (at once, unless one of them started
   * this build early); false when one of them failed, and this build is aborted. Outputs must not
   * be registered before.
   */
  dependenciesRegistered: Promise<boolean>;
}

/** Substitutes `storePath`; should settle soon after `signal` aborts. */
export type SubstituteFunction = (
  storePath: string,
  signal: AbortSignal,
) => Promise<SubstituteOutcome>;
