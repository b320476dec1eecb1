/**
 * A whole build run as a library call: plans the targets, substitutes what the caches have of the
 * missing outputs, builds the rest and registers it, and tells what happens through one stream of
 * events (see run_events.ts). Every front end starts, observes and cancels builds through it:
 * `kiln build` renders the events as lines; a daemon renders them onto its clients' stderr.
 *
 * {@link realise} returns a {@link BuildRun}: its `outcome` settles once the run has cleaned up
 * everything it started (the watchdog, build dirs, the sandbox share and store view, background
 * removals) and recorded how long its builds took (for later runs' estimates);
 * `cancel()` (or the caller's signal) aborts what runs, which then reports cancelled; disposing
 * of it (`await using`) cancels a run that is still going and waits for that cleanup.
 */

import {
  makeSandboxShare,
  makeStoreView,
  probeNamespaces,
  probeSandbox,
  type SandboxBackend,
  type SandboxBackendChoice,
  type SandboxShare,
  withElfDependencies,
} from "../sandbox/mod.ts";
import { type LocalStore, removeTree } from "../store/mod.ts";
import type { BuildResult } from "./build_result.ts";
import {
  type BuildSettings,
  type DerivationGoals,
  makeDerivationGoals,
} from "./derivation_goal.ts";
import { inputsFirst } from "./missing.ts";
import { type BuildPlan, type BuildTarget, planBuild } from "./plan.ts";
import type { RunListener } from "./run_events.ts";
import { Watchdog } from "./watchdog.ts";
import { runGoals } from "./worker.ts";
import { AutoGc, type AutoGcOptions } from "./_auto_gc.ts";
import { BuildDirs } from "./_build_dirs.ts";
import { estimator, recordBuildTimes } from "./_estimate.ts";
import { EventSink, GoalActivities } from "./_run_activities.ts";
import { substituteOutputs, type SubstitutionOptions } from "./_substitute_step.ts";

export type { SubstitutionOptions } from "./_substitute_step.ts";

/** What a run needs besides the store and its targets. */
export interface RealiseOptions {
  /** The store's physical root: `/` when the store is at its logical place. */
  storeRoot: string;
  /** Where build logs go (see `buildLogDir`). */
  logDir: string;
  /** Where build dirs are made (the host's TMPDIR). */
  tmpDir: string;
  /** The environment that fixed-output derivations' `impureEnvVars` are taken from. */
  impureEnv: Record<string, string>;
  /** `sandbox` is the mode asked for; where the sandbox does not work, see `sandboxFallback`. */
  settings: BuildSettings;
  /** Where the sandbox does not work here: build without it (with a warning), else throw. */
  sandboxFallback: boolean;
  /** Which sandbox to use: bwrap, the kernel's namespaces, or (`auto`, the default) the first that works. */
  sandboxBackend?: SandboxBackendChoice;
  /** `max-jobs`: concurrent builds; 0 builds nothing locally. */
  maxJobs: number;
  keepGoing: boolean;
  /** `--check`: rebuild valid derivations and compare (substitutes nothing). */
  check?: boolean;
  /** `--repair`: rebuild corrupt outputs (substitutes nothing). */
  repair?: boolean;
  /** Binary caches to substitute from before building; none when absent. */
  substitution?: SubstitutionOptions;
  /** `min-free` / `max-free`: collect garbage when the store's file system runs low. */
  autoGc?: AutoGcOptions;
  /** Emit `estimate` results from the build times recorded in the store (a status line's ETA). */
  estimate?: boolean;
  /** Aborting it cancels the run, as `BuildRun.cancel` does. */
  signal?: AbortSignal;
  onEvent?: RunListener;
}

/**
 * How a run ended: realised (each goal of the plan has its result, failures included), or
 * stopped before building because substitutes failed without `fallback` (or it was cancelled).
 */
export type RealiseOutcome =
  | { status: "realised"; plan: BuildPlan; results: Map<string, BuildResult> }
  | { status: "substitution-failed"; failures: BuildResult[] };

/** A running build run (see the module doc). */
export class BuildRun implements AsyncDisposable {
  /** Settles once the run has ended and cleaned up; rejects on bad input or a broken invariant. */
  readonly outcome: Promise<RealiseOutcome>;
  readonly #controller = new AbortController();

  constructor(store: LocalStore, targets: readonly BuildTarget[], options: RealiseOptions) {
    const signal = options.signal === undefined
      ? this.#controller.signal
      : AbortSignal.any([options.signal, this.#controller.signal]);
    const events = new EventSink(options.onEvent, (error) => this.#controller.abort(error));
    // What a throwing listener threw is the run's error, whatever the run made of the abort.
    this.outcome = runPhases(store, targets, options, signal, events).finally(() =>
      events.rethrow()
    );
  }

  /** Aborts what runs (it reports cancelled) and starts nothing more. */
  cancel(reason: unknown = new DOMException("The build run was cancelled", "AbortError")): void {
    this.#controller.abort(reason);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.cancel();
    await this.outcome.catch(() => {});
  }
}

/** Starts realising `targets` in `store`. */
export function realise(
  store: LocalStore,
  targets: readonly BuildTarget[],
  options: RealiseOptions,
): BuildRun {
  return new BuildRun(store, targets, options);
}

async function runPhases(
  store: LocalStore,
  targets: readonly BuildTarget[],
  options: RealiseOptions,
  signal: AbortSignal,
  events: EventSink,
): Promise<RealiseOutcome> {
  const planOptions = { check: options.check, repair: options.repair };
  // Temporary roots for the run: every derivation, its outputs and sources, so no collector
  // takes an input of a build or an output the run made while it runs. A collection between the
  // first look and the roots may have taken an output the plan saw valid: then it is made again.
  let plan = planBuild(store, targets, planOptions);
  const planned = [...plan.derivations.values()];
  await store.addTempRoots(
    planned.flatMap((d) => [d.path, ...d.outputPaths.values(), ...d.drv.inputSrcs]),
  );
  const collected = planned.some((d) =>
    [...d.valid].some((name) => !store.isValidPath(d.outputPaths.get(name)!))
  );
  if (collected) plan = planBuild(store, targets, planOptions);
  const autoGc = options.autoGc &&
    new AutoGc(store, { ...options.autoGc, onMessage: (text) => events.msg("info", text) });
  await autoGc?.ensureFree();
  const substitution = options.substitution;
  if (substitution !== undefined && !options.check && !options.repair) {
    const tracker = new GoalActivities(events, "copyPaths");
    const failures = await substituteOutputs(plan, substitution, {
      signal,
      onEvent: (event, narSize) => tracker.onEvent(event, { narSize }),
    });
    tracker.end();
    if (failures !== undefined) {
      if (signal.aborted || (failures.length > 0 && !substitution.fallback)) {
        if (!signal.aborted) {
          events.msg("error", "some substitutes failed; use --fallback to build them instead");
        }
        return { status: "substitution-failed", failures };
      }
      plan = planBuild(store, targets, planOptions); // what arrived is valid now
    }
  }
  const toBuild = [...new Set(plan.roots.filter((p) => !plan.graph.get(p)!.valid))];
  const settings = await resolveSandbox(options, toBuild.length > 0, events);
  if (settings.sandbox === "off" && options.check) {
    throw new TypeError(
      "--check needs the sandbox: without it the rebuilt outputs would overwrite the valid ones",
    );
  }
  if (toBuild.length > 0) {
    const head = toBuild.length === 1
      ? "this derivation will be built:"
      : `these ${toBuild.length} derivations will be built:`;
    const lines = inputsFirst(plan, toBuild).map((p) => `  ${p}`);
    events.msg("info", [head, ...lines].join("\n"));
  }
  const results = await buildPlan(store, plan, { ...options, settings, autoGc }, signal, events);
  return { status: "realised", plan, results };
}

/** The run's build settings, with whether unsandboxed builders see the store through namespaces. */
type RunSettings = BuildSettings & { storeView: boolean };

/**
 * The settings with the sandbox the run really uses: its backends probed once when something is
 * to be built (and, for unsandboxed builds with a store root other than `/`, whether namespaces
 * can show them the store at its logical place).
 */
async function resolveSandbox(
  options: RealiseOptions,
  needed: boolean,
  events: EventSink,
): Promise<RunSettings> {
  const backend = options.sandboxBackend;
  let sandbox = options.settings.sandbox;
  let sandboxBackend: SandboxBackend | undefined;
  if (sandbox !== "off" && needed) {
    const probe = await probeSandbox({ backend });
    if (probe.ok) {
      sandboxBackend = probe.backend;
      if (probe.bwrapProblem !== undefined) {
        events.msg(
          "warn",
          `bubblewrap does not work here (${probe.bwrapProblem}); sandboxing with user namespaces (unshare)`,
        );
      } else if (probe.backend === "namespaces") {
        events.msg("warn", "sandboxing with user namespaces (unshare), as sandbox-backend says");
      }
    } else {
      if (!options.sandboxFallback) {
        throw new TypeError(`The sandbox does not work here (${probe.reason})`);
      }
      events.msg("warn", `the sandbox does not work here (${probe.reason}); building without it`);
      sandbox = "off";
    }
  }
  // Unsandboxed builders see the store at its logical place through namespaces where they work.
  const storeView = sandbox !== "on" && options.storeRoot !== "/" && needed &&
    backend !== "bwrap" && (sandboxBackend === "namespaces" || (await probeNamespaces()).ok);
  const sandboxPaths = options.settings.sandboxPaths;
  return {
    ...options.settings,
    sandbox,
    // What a sandboxed builder loads (`ld.so --list`, a process) matters only in a sandbox.
    sandboxPaths: sandbox === "off" ? sandboxPaths : withElfDependencies(sandboxPaths),
    sandboxBackend,
    storeView,
  };
}

/** Builds what `plan` lacks, with the worker; cleans up what it started before it returns. */
async function buildPlan(
  store: LocalStore,
  plan: BuildPlan,
  options: Omit<RealiseOptions, "autoGc"> & { settings: RunSettings; autoGc?: AutoGc },
  signal: AbortSignal,
  events: EventSink,
): Promise<Map<string, BuildResult>> {
  const { settings } = options;
  const needed = plan.roots.some((p) => !plan.graph.get(p)!.valid);
  // bwrap's --die-with-parent covers its builders; every other builder needs the watchdog.
  const watchdog = needed && (settings.sandbox !== "on" || settings.sandboxBackend !== "bwrap")
    ? await Watchdog.start()
    : undefined;
  let shareDir: string | undefined;
  let viewDir: string | undefined;
  const background = new Set<Promise<void>>();
  const buildDirs = new BuildDirs(options.tmpDir, background);
  let goals: DerivationGoals | undefined;
  const tracker = new GoalActivities(events, "builds");
  try {
    let sandboxShare: SandboxShare | undefined;
    if (needed && settings.sandbox !== "off") {
      shareDir = store.makeTempPath("sandbox-share");
      sandboxShare = makeSandboxShare(shareDir, { sandboxBuildDir: settings.sandboxBuildDir });
    }
    if (needed && settings.storeView) viewDir = store.makeTempPath("store-view");
    const storeView = viewDir === undefined
      ? undefined
      : makeStoreView(viewDir, { storeDir: store.storeDir, storeRoot: options.storeRoot });
    goals = makeDerivationGoals({
      store,
      storeRoot: options.storeRoot,
      settings,
      plan,
      logDir: options.logDir,
      buildDirs,
      impureEnv: options.impureEnv,
      watchdog,
      sandboxShare,
      storeView,
      background,
      onLine: options.onEvent && ((drvPath, line) => tracker.logLine(drvPath, line)),
      onNote: (message) => events.msg("info", `note: ${message}`),
      onWarning: (message) => events.msg("warn", message),
    });
    const estimate = options.estimate && options.onEvent ? estimator(store, plan) : undefined;
    const build = goals.build;
    const autoGc = options.autoGc;
    const results = await runGoals(plan.graph, plan.roots, {
      build: autoGc === undefined ? build : async (...args) => {
        await autoGc.ensureFree();
        return build(...args);
      },
      prepare: goals.prepare,
      maxJobs: options.maxJobs,
      keepGoing: options.keepGoing,
      signal,
      onEvent: (event) => {
        const drv = plan.derivations.get(event.path);
        const verb = options.check && drv?.check ? "checking outputs of" : "building";
        tracker.onEvent(event, { text: `${verb} '${event.path}'`, name: drv?.drv.name });
        estimate?.(event, (remaining, at) => tracker.estimate(remaining, at));
      },
    });
    recordBuildTimes(store, plan, results);
    return results;
  } finally {
    tracker.end();
    await goals?.releasePrepared();
    await Promise.all(background);
    buildDirs.close();
    if (shareDir !== undefined) removeTree(shareDir);
    if (viewDir !== undefined) removeTree(viewDir);
    await watchdog?.close();
  }
}
