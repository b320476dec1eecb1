/**
 * One run of a derivation's builder (Nix 2.8 `startBuilder` + the child's supervision): the build
 * directory and its files, the sandbox root, the environment, the log file, and the builder itself
 * under the clocks and the log limit. Where each output lands is `outputLocation`.
 */

import { basename, join } from "node:path";
import type { Derivation } from "../derivation/mod.ts";
import { encodeNixString } from "../hashing/mod.ts";
import {
  type BuildEnvironment,
  type BuilderResult,
  type BwrapConfig,
  type ExportedPathInfo,
  makeBuildEnvironment,
  openCompressedLog,
  parseExportReferencesGraph,
  prepareSandbox,
  releaseSandboxRoot,
  type SandboxBackend,
  type SandboxShare,
  spawnBuilder,
  type StoreView,
  superviseBuilder,
  writeEmptyLog,
} from "../sandbox/mod.ts";
import { type LocalStore, removeTree } from "../store/mod.ts";
import type { Watchdog } from "./watchdog.ts";
import { type BuildDirs, inBackground } from "./_build_dirs.ts";
import { errorMessage } from "./_outcome.ts";

/** Build settings that do not change during a run. */
export interface BuildSettings {
  /** `NIX_BUILD_CORES`. */
  cores: number;
  /** Seconds; 0 = none. */
  timeout: number;
  /** Seconds; 0 = none. */
  maxSilentTime: number;
  /** Log lines quoted in a failure. */
  logLines: number;
  /** Bytes; 0 = none. */
  maxLogSize: number;
  /** `on`, `off`, or `relaxed` (fixed-output and `__noChroot` derivations run unsandboxed). */
  sandbox: "on" | "off" | "relaxed";
  /** Nix's `sandbox-paths` entries. */
  sandboxPaths: string[];
  /** Where the build dir appears in the sandbox. */
  sandboxBuildDir: string;
  /** What runs sandboxed builders (default bwrap). */
  sandboxBackend?: SandboxBackend;
  /** `-K`: keep the build dir of a failed build. */
  keepFailed: boolean;
  /** How often each derivation is built; more than 1 compares the results. */
  rounds: number;
}

/** What a round needs from the run. */
export interface RoundContext {
  store: LocalStore;
  storeRoot: string;
  settings: BuildSettings;
  /** Where build dirs come from (the host's temporary directory). */
  buildDirs: BuildDirs;
  /** Environment the `impureEnvVars` of fixed-output derivations are taken from. */
  impureEnv: Record<string, string>;
  watchdog?: Watchdog;
  /**
   * When given, finished rounds' directories are removed and small logs written in the
   * background (off the build's critical path), collected here for the caller to await before
   * it ends.
   */
  background?: Set<Promise<void>>;
  /** Problems that do not fail the build (a build log that could not be written). */
  onWarning?: (message: string) => void;
  /** What the run's sandboxes share (`makeSandboxShare`); without it each round makes its own. */
  sandboxShare?: SandboxShare;
  /** Unsandboxed builders run in it, where the store root is not `/` (see `makeStoreView`). */
  storeView?: StoreView;
  onLine?: (drvPath: string, line: string) => void;
}

/** The derivation being built and how. */
export interface RoundJob {
  drvPath: string;
  drv: Derivation;
  outputPaths: Map<string, string>;
  fixedOutput: boolean;
  sandboxed: boolean;
  /** The store paths the sandbox shows: inputs and what `sandbox-paths` names; else unused. */
  inputPaths: string[];
  logPath: string;
  signal: AbortSignal;
  /** Called once the builder runs. */
  onSpawned?: () => void;
}

/** A finished round: its directories (the caller removes them) and how the builder ended. */
export interface Round {
  buildDir: string;
  /** The sandbox root, whose `store/` holds the outputs (sandboxed builds only). */
  rootDir?: string;
  result: BuilderResult;
}

/**
 * What a round can have ready before its inputs exist (while the build it waits for runs): its
 * build dir and the environment, which names that dir.
 */
export interface PreparedRound {
  buildDir: string;
  environment: BuildEnvironment;
}

/** Takes a build dir for `job` and computes its environment (see {@link PreparedRound}). */
export async function prepareRound(
  job: Pick<RoundJob, "drv" | "outputPaths" | "fixedOutput" | "sandboxed">,
  context: RoundContext,
): Promise<PreparedRound> {
  const buildDir = await context.buildDirs.take(job.drv.name);
  return { buildDir, environment: roundEnvironment(job, buildDir, context) };
}

/** Where output `path` is after a round: the sandbox's store, or its place in the real store. */
export function outputLocation(store: LocalStore, round: Round, path: string): string {
  return round.rootDir === undefined
    ? store.physicalPath(path)
    : join(round.rootDir, "store", basename(path));
}

/**
 * Runs the builder once, from `prepared` where given (which it then owns). Throws (e.g. a spawn
 * error) after removing what it created.
 */
export async function runRound(
  job: RoundJob,
  context: RoundContext,
  prepared?: PreparedRound,
): Promise<Round> {
  const { store, settings } = context;
  const buildDir = prepared?.buildDir ?? await context.buildDirs.take(job.drv.name);
  const round: Round = { buildDir, result: undefined as unknown as BuilderResult };
  try {
    let sandbox: BwrapConfig | undefined;
    if (job.sandboxed) {
      round.rootDir = store.makeTempPath(`build-${job.drv.name}`);
      sandbox = {
        storeDir: store.storeDir,
        storeRoot: context.storeRoot,
        rootDir: round.rootDir,
        buildDir,
        sandboxBuildDir: settings.sandboxBuildDir,
        inputPaths: job.inputPaths,
        sandboxPaths: settings.sandboxPaths,
        fixedOutput: job.fixedOutput,
        share: context.sandboxShare,
        backend: settings.sandboxBackend,
      };
      sandbox.copiedInputs = await prepareSandbox(sandbox);
    }
    const environment = prepared?.environment ?? roundEnvironment(job, buildDir, context);
    for (const [name, contents] of environment.files) {
      Deno.writeFileSync(join(buildDir, name), encodeNixString(contents));
    }
    const warnOnFailure = (write: Promise<void>) =>
      write.catch((error) =>
        context.onWarning?.(
          `cannot write the build log of '${job.drvPath}': ${errorMessage(error)}`,
        )
      );
    const logFile = await openCompressedLog(job.logPath, {
      defer: context.background &&
        ((write) => inBackground(context.background!, warnOnFailure(write))),
    });
    let handle;
    try {
      handle = await spawnBuilder({
        program: job.drv.builder,
        args: environment.args,
        env: environment.env,
        cwd: buildDir,
        sandbox,
        storeView: sandbox ? undefined : context.storeView,
      });
    } catch (error) {
      await logFile.abort(error);
      throw error;
    }
    job.onSpawned?.();
    // bwrap's --die-with-parent already takes a sandboxed builder down with kiln.
    const dies = job.sandboxed && (settings.sandboxBackend ?? "bwrap") === "bwrap";
    const watchdog = dies ? undefined : context.watchdog;
    watchdog?.add(handle.pid);
    try {
      await using builder = handle;
      round.result = await superviseBuilder(builder, {
        timeout: settings.timeout,
        maxSilentTime: settings.maxSilentTime,
        logLines: settings.logLines,
        maxLogSize: settings.maxLogSize,
        logFile,
        onLine: context.onLine && ((line) => context.onLine!(job.drvPath, line)),
        signal: job.signal,
      });
    } finally {
      watchdog?.remove(handle.pid);
    }
    const { outcome, logBytes } = round.result;
    if (logBytes === 0 && !(outcome.kind === "exited" && outcome.code === 0)) {
      await warnOnFailure(writeEmptyLog(job.logPath)); // as Nix keeps a failed build's log
    }
    return round;
  } catch (error) {
    removeRound(round, context);
    throw error;
  }
}

/**
 * Done with a round's directories (whatever they hold): the build dir goes back to `buildDirs`,
 * the sandbox root to the next sandbox where it can, else it is removed (in the background where
 * asked to).
 */
export function removeRound(
  round: { buildDir?: string; rootDir?: string },
  context: Pick<RoundContext, "background" | "buildDirs" | "sandboxShare">,
): void {
  if (round.buildDir !== undefined) context.buildDirs.give(round.buildDir);
  if (round.rootDir === undefined) return;
  if (!releaseSandboxRoot(context.sandboxShare, round.rootDir)) removeDir(round.rootDir, context);
}

/** Removes `dir` (whatever it holds), in the background where asked to. */
export function removeDir(dir: string, context: Pick<RoundContext, "background">): void {
  if (context.background === undefined) return removeTree(dir);
  inBackground(
    context.background,
    Deno.remove(dir, { recursive: true })
      .catch(() => removeTree(dir)) // read-only directories, or already gone
      .catch(() => {}), // left to the store's cleanup of stale temporaries
  );
}

/** The builder's environment for `job` in `buildDir` (the sandbox's own build dir inside it). */
function roundEnvironment(
  job: Pick<RoundJob, "drv" | "outputPaths" | "fixedOutput" | "sandboxed">,
  buildDir: string,
  context: RoundContext,
): BuildEnvironment {
  const { store, settings } = context;
  return makeBuildEnvironment(job.drv, {
    storeDir: store.storeDir,
    buildDir: job.sandboxed ? settings.sandboxBuildDir : buildDir,
    cores: settings.cores,
    outputPaths: job.outputPaths,
    fixedOutput: job.fixedOutput,
    impureEnv: context.impureEnv,
    referenceGraphs: referenceGraphs(store, job.drv),
  });
}

/** The closures `exportReferencesGraph` asks for, with the store's information on each path. */
function referenceGraphs(store: LocalStore, drv: Derivation): Map<string, ExportedPathInfo[]> {
  const graphs = new Map<string, ExportedPathInfo[]>();
  for (const [name, roots] of parseExportReferencesGraph(drv, store.storeDir)) {
    const start = new Set(roots);
    for (const root of roots) {
      // As Nix: a derivation's closure brings its outputs' closures along.
      if (root.endsWith(".drv")) {
        for (const output of store.queryDerivationOutputs(root).values()) {
          if (store.isValidPath(output)) start.add(output);
        }
      }
    }
    const closure = store.computeClosure(start);
    graphs.set(
      name,
      closure.map((path) => {
        const info = store.queryPathInfo(path)!;
        let closureSize = 0;
        for (const p of store.computeClosure([path])) {
          closureSize += store.queryPathInfo(p)!.narSize;
        }
        const exported: ExportedPathInfo = {
          path,
          narHash: info.narHash,
          narSize: info.narSize,
          references: info.references,
          closureSize,
        };
        if (info.ca !== undefined) exported.ca = info.ca;
        return exported;
      }),
    );
  }
  return graphs;
}
