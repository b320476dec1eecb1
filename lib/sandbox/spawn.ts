/**
 * Starting builders (the only place kiln spawns one) and supervising them: the output pipe, the
 * two clocks (`timeout`, `max-silent-time`), `max-build-log-size` and cancellation.
 *
 * A builder runs in its own session and process group (so killing the tree reaches every
 * descendant, see `_process_tree.ts`), with stdout and stderr on one pipe in order (as Nix's
 * single log pipe), stdin `/dev/null`, core dumps off (soft limit 0, hard limit kept, as Nix
 * does) and exactly the given environment. Two launchers provide that:
 * - `libc` (the default where this process may use FFI with glibc): `posix_spawn` with
 *   `POSIX_SPAWN_SETSID`, one exec (see `_libc_spawn.ts`);
 * - `wrapper` (anywhere): util-linux `setsid` (or Deno's `detached`) runs `/bin/sh -c 'exec
 *   2>&1; ulimit -S -c 0; exec /usr/bin/env -i NAME=VALUE... builder'`: three execs, the
 *   environment travelling as arguments because sh would drop names that are not shell names
 *   (`enable-foo`) and rewrite PWD, IFS, OPTIND and PPID. Deno passes arguments as UTF-8, so
 *   a derivation's bytes that are not UTF-8 reach the builder as U+FFFD here (the `libc`
 *   launcher passes them exactly, as Nix does).
 * In the sandbox bwrap's `--die-with-parent` and PID namespace take the rest down with it; the
 * namespace backend's `unshare --kill-child` takes its PID namespace down when it is killed (kiln's
 * watchdog kills it when kiln dies).
 */

import { bwrapArgs, type BwrapConfig, findBwrap } from "./bwrap.ts";
import { launchInNamespaces, launchInStoreView, type StoreView } from "./namespaces.ts";
import { type BuildLogOptions, pumpBuildLog } from "./log_lines.ts";
import { killProcessGroup, killProcessTree } from "./_process_tree.ts";
import { libcSpawn, libcSpawnAvailable } from "./_libc_spawn.ts";
import { InternalError } from "../sys/mod.ts";

export interface SpawnBuilderOptions {
  /** The builder executable (absolute path: no PATH search is done). */
  program: string;
  args: readonly string[];
  /** The builder's whole environment; nothing is inherited. */
  env: Record<string, string>;
  /** Host working directory (unused in the sandbox, which starts in its build dir). */
  cwd: string;
  /** Run in the sandbox, through its `backend` (see `prepareSandbox` first). */
  sandbox?: BwrapConfig;
  /** Outside the sandbox: run in this view of the host with the store at its logical place. */
  storeView?: StoreView;
  /** Aborting kills the process tree. */
  signal?: AbortSignal;
  /** How to start it (see the module comment); default `libc` where available, else `wrapper`. */
  launcher?: "libc" | "wrapper";
}

/** How the builder ended: an exit code, or the signal that killed it. */
export interface BuilderStatus {
  code: number | null;
  signal: string | null;
}

/** A running builder. `await using` kills whatever is left of it on scope exit. */
export interface BuilderHandle extends AsyncDisposable {
  readonly pid: number;
  /** stdout and stderr together, as written. */
  readonly output: ReadableStream<Uint8Array>;
  /** Settles when the builder exits. Any processes it left behind are killed then. */
  readonly status: Promise<BuilderStatus>;
  /** Kills the whole process tree and waits for the builder to be reaped. */
  kill(): Promise<void>;
}

const WRAPPER_SCRIPT = 'exec 2>&1; ulimit -S -c 0; exec /usr/bin/env -i "$@"';

let setsidPath: string | undefined | null = null;

/**
 * util-linux `setsid`, which Deno's own `detached` (also setsid) beats by about 1.5 ms per spawn:
 * Deno reads a detached child's pipe more slowly. It execs in place (the child is no group leader).
 */
function findSetsid(): string | undefined {
  if (setsidPath === null) {
    setsidPath = ["/usr/bin/setsid", "/bin/setsid"].find((p) => {
      try {
        return Deno.statSync(p).isFile;
      } catch {
        return false;
      }
    });
  }
  return setsidPath;
}

/** Starts a builder. Rejects (a Deno error) only if it cannot be started at all. */
export async function spawnBuilder(options: SpawnBuilderOptions): Promise<BuilderHandle> {
  let argv = [options.program, ...options.args];
  let env = options.env;
  if (options.sandbox?.backend === "namespaces") {
    ({ argv, env } = launchInNamespaces(options.sandbox, { argv, env }));
  } else if (options.sandbox) {
    const bwrap = options.sandbox.bwrapPath ?? findBwrap();
    if (bwrap === undefined) {
      throw new TypeError("Cannot sandbox the build: bwrap is not on the PATH");
    }
    argv = [bwrap, ...bwrapArgs(options.sandbox), "--", ...argv];
  } else if (options.storeView) {
    ({ argv, env } = launchInStoreView(options.storeView, { argv, env, cwd: options.cwd }));
  } else if (options.program.includes("=")) {
    // env(1) of the wrapper would take it for a variable assignment.
    throw new TypeError(`Builder '${options.program}' contains '=': run it in the sandbox`);
  }
  const cwd = options.sandbox ? options.sandbox.buildDir : options.cwd;
  const launcher = options.launcher ?? (libcSpawnAvailable() ? "libc" : "wrapper");
  const child = launcher === "libc"
    ? await libcSpawn(argv, env, cwd)
    : spawnWrapped(argv, env, cwd);
  const pid = child.pid;
  let exited = false;
  const onAbort = () => void kill();
  const status = child.status.then((s) => {
    exited = true;
    options.signal?.removeEventListener("abort", onAbort);
    // The libc launcher has killed the group's leftovers before reaping the builder. Deno reaps the
    // wrapper's child itself, so here the group id could in principle be reused already: a
    // narrow race that the fallback launcher accepts.
    if (launcher === "wrapper") killProcessGroup(pid);
    return s;
  });
  const kill = async () => {
    if (!exited) killProcessTree(pid);
    await status;
  };
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener("abort", onAbort, { once: true });
  const output = child.output;
  return {
    pid,
    output,
    status,
    kill,
    async [Symbol.asyncDispose]() {
      await kill();
      if (!output.locked) await output.cancel();
    },
  };
}

/** The `wrapper` launcher: Deno.Command running setsid, sh and env. */
function spawnWrapped(
  argv: string[],
  env: Record<string, string>,
  cwd: string,
): { pid: number; output: ReadableStream<Uint8Array>; status: Promise<BuilderStatus> } {
  const assignments = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const wrapper = ["/bin/sh", "-c", WRAPPER_SCRIPT, "kiln-builder", ...assignments, ...argv];
  const setsid = findSetsid();
  const child = new Deno.Command(setsid ?? wrapper[0], {
    args: setsid ? wrapper : wrapper.slice(1),
    cwd,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
    detached: setsid === undefined,
  }).spawn();
  return {
    pid: child.pid,
    output: child.stdout,
    status: child.status.then((s) => ({
      code: s.signal === null ? s.code : null,
      signal: s.signal,
    })),
  };
}

/** A helper process of kiln's (see {@link spawnHelper}). */
export interface HelperHandle {
  /** Ends the helper's stdin. */
  closeInput(): void;
  /** Settles when it exits. */
  status: Promise<unknown>;
}

/**
 * Starts a helper of kiln's (not a builder): `argv` (an absolute program) with an empty
 * environment, its output discarded, its stdin a pipe that `closeInput` ends, and so does this
 * process's exit, however it comes. Through libc where it can (Deno's subprocess machinery, loaded
 * on first use, costs ~5 ms), in a session of its own; else with Deno's spawn.
 */
export async function spawnHelper(argv: readonly string[]): Promise<HelperHandle> {
  if (libcSpawnAvailable()) {
    const child = await libcSpawn(argv, {}, "/", { input: true });
    await child.output.cancel();
    return { closeInput: child.closeInput!, status: child.status };
  }
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "piped",
    stdout: "null",
    stderr: "null",
    clearEnv: true,
  }).spawn();
  return { closeInput: () => void child.stdin.close().catch(() => {}), status: child.status };
}

/** Timer functions, injectable so that tests drive the clocks. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

const REAL_TIMERS: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (id) => clearTimeout(id as number),
};

export interface SuperviseOptions extends Omit<BuildLogOptions, "onChunk" | "onLogLimit"> {
  /** Nix's `timeout`, in seconds; 0 or absent means none. */
  timeout?: number;
  /** Nix's `max-silent-time`, in seconds; 0 or absent means none. */
  maxSilentTime?: number;
  /** Aborting kills the builder; the outcome is then `cancelled`. */
  signal?: AbortSignal;
  timers?: Timers;
}

/** Why a builder stopped. */
export type BuilderOutcome =
  | { kind: "exited"; code: number }
  | { kind: "signaled"; signal: string }
  | { kind: "timed-out" }
  | { kind: "silent-timeout" }
  | { kind: "log-limit" }
  | { kind: "cancelled" };

export interface BuilderResult {
  outcome: BuilderOutcome;
  /** The last `logLines` lines of output. */
  tail: string[];
  /** Bytes of output received. */
  logBytes: number;
}

const TIMED_OUT: BuilderOutcome = { kind: "timed-out" };
const SILENT: BuilderOutcome = { kind: "silent-timeout" };
const LOG_LIMIT: BuilderOutcome = { kind: "log-limit" };
const CANCELLED: BuilderOutcome = { kind: "cancelled" };

/**
 * Drains a builder's output through the log pipeline while watching the clocks, the log size
 * and `signal`; whichever fires first kills the process tree and names the outcome.
 */
export async function superviseBuilder(
  handle: BuilderHandle,
  options: SuperviseOptions,
): Promise<BuilderResult> {
  const timers = options.timers ?? REAL_TIMERS;
  let exited = false;
  let cause: BuilderOutcome | undefined;
  // The first of the clocks, the log limit and `signal` to fire names the outcome.
  const stop = (reason: BuilderOutcome) => {
    if (exited || cause !== undefined) return;
    cause = reason;
    void handle.kill();
  };
  const onAbort = () => stop(CANCELLED);

  const totalTimer = options.timeout
    ? timers.setTimeout(() => stop(TIMED_OUT), options.timeout * 1000)
    : undefined;
  let silenceTimer: unknown;
  const resetSilence = () => {
    if (!options.maxSilentTime || exited) return;
    if (silenceTimer !== undefined) timers.clearTimeout(silenceTimer);
    silenceTimer = timers.setTimeout(() => stop(SILENT), options.maxSilentTime * 1000);
  };
  const stopClocks = () => {
    exited = true;
    if (totalTimer !== undefined) timers.clearTimeout(totalTimer);
    if (silenceTimer !== undefined) timers.clearTimeout(silenceTimer);
  };

  resetSilence();
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const [status, log] = await Promise.all([
      handle.status.finally(stopClocks),
      pumpBuildLog(handle.output, {
        ...options,
        onChunk: resetSilence,
        onLogLimit: () => stop(LOG_LIMIT),
      }),
    ]);
    return { outcome: cause ?? statusOutcome(status), tail: log.tail, logBytes: log.bytes };
  } catch (error) {
    await handle.kill(); // e.g. the log file failed: leave no builder behind
    throw error;
  } finally {
    stopClocks();
    options.signal?.removeEventListener("abort", onAbort);
  }
}

function statusOutcome(status: BuilderStatus): BuilderOutcome {
  if (status.signal !== null) return { kind: "signaled", signal: status.signal };
  if (status.code !== null) return { kind: "exited", code: status.code };
  throw new InternalError("builder status has neither an exit code nor a signal");
}

/** `spawnBuilder` + `superviseBuilder`: runs a builder to its end. */
export async function runBuilder(
  options: SpawnBuilderOptions & SuperviseOptions,
): Promise<BuilderResult> {
  await using handle = await spawnBuilder({ ...options, signal: undefined });
  return await superviseBuilder(handle, options);
}
