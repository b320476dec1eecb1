/** Goal functions the tests drive by hand: every call waits until the test settles it. */

import type {
  BuildHooks,
  BuildOutcome,
  BuildResult,
  FailureResult,
  GoalKind,
  GoalNode,
  SubstituteOutcome,
} from "../../lib/scheduler/mod.ts";
import { assertEquals } from "../_assert.ts";

interface Call {
  path: string;
  signal: AbortSignal;
  /** A build's hooks (substitutions have none). */
  hooks?: BuildHooks;
  resolve(outcome: BuildOutcome | SubstituteOutcome): void;
  reject(error: unknown): void;
}

/** Records calls to `build` / `substitute`; `settle*` finishes them; counts concurrency. */
export class ManualWork {
  readonly calls: string[] = [];
  running = 0;
  maxRunning = 0;
  /** A build is underway (`BuildHooks.underway`) as soon as it is called; else the test says so. */
  underwayOnCall = true;
  readonly #open = new Map<string, Call>();
  readonly #unread: string[] = [];
  #unreadHead = 0;
  #waiter: ((path: string) => void) | undefined;

  readonly build = (
    path: string,
    signal: AbortSignal,
    hooks: BuildHooks,
  ): Promise<BuildOutcome> => this.#call(path, signal, hooks) as Promise<BuildOutcome>;
  readonly substitute = (path: string, signal: AbortSignal): Promise<SubstituteOutcome> =>
    this.#call(path, signal) as Promise<SubstituteOutcome>;

  #call(
    path: string,
    signal: AbortSignal,
    hooks?: BuildHooks,
  ): Promise<BuildOutcome | SubstituteOutcome> {
    this.calls.push(path);
    if (this.underwayOnCall) hooks?.underway();
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    const promise = new Promise<BuildOutcome | SubstituteOutcome>((resolve, reject) => {
      this.#open.set(path, { path, signal, hooks, resolve, reject });
    });
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter) waiter(path);
    else this.#unread.push(path);
    return promise.finally(() => this.running--);
  }

  /** The next call not yet returned by `nextCall`, waiting for it if need be. */
  nextCall(): Promise<string> {
    if (this.#unreadHead < this.#unread.length) {
      return Promise.resolve(this.#unread[this.#unreadHead++]);
    }
    return new Promise((resolve) => this.#waiter = resolve);
  }

  /** The next `n` calls, in order. */
  async nextCalls(n: number): Promise<string[]> {
    const paths: string[] = [];
    for (let i = 0; i < n; i++) paths.push(await this.nextCall());
    return paths;
  }

  /** The hooks the build function for `path` got. */
  hooksOf(path: string): BuildHooks {
    return this.#take(path, false).hooks!;
  }

  /** The signal the goal function for `path` got. */
  signalOf(path: string): AbortSignal {
    return this.#take(path, false).signal;
  }

  /** Resolves once the signal of the goal function for `path` aborts. */
  aborted(path: string): Promise<void> {
    const signal = this.signalOf(path);
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => signal.addEventListener("abort", () => resolve()));
  }

  succeed(path: string, outputs?: Record<string, string>): void {
    this.#take(path, true).resolve({ status: "built", outputs });
  }

  substituted(path: string): void {
    this.#take(path, true).resolve({ status: "substituted" });
  }

  fail(path: string, outcome: Partial<BuildOutcome & { status: "failed" }> = {}): void {
    this.#take(path, true).resolve({
      status: "failed",
      reason: "exit-non-zero",
      message: `builder for '${path}' failed with exit code 1`,
      exitCode: 1,
      ...outcome,
    });
  }

  throw(path: string, error: unknown): void {
    this.#take(path, true).reject(error);
  }

  /** Paths whose call has not been settled. */
  get open(): string[] {
    return [...this.#open.keys()];
  }

  #take(path: string, remove: boolean): Call {
    const call = this.#open.get(path);
    if (call === undefined) throw new Error(`No open call for '${path}'`);
    if (remove) this.#open.delete(path);
    return call;
  }
}

/** A graph from `key: [dependencies]`, all build goals unless listed in `kinds`. */
export function graphOf(
  edges: Record<string, string[]>,
  options: { valid?: string[]; kinds?: Record<string, GoalKind> } = {},
): Map<string, GoalNode> {
  const graph = new Map<string, GoalNode>();
  for (const [key, dependencies] of Object.entries(edges)) {
    graph.set(key, {
      kind: options.kinds?.[key] ?? "build",
      dependencies,
      valid: options.valid?.includes(key),
    });
  }
  return graph;
}

/** The failure result of `path`; asserts that it failed. */
export function failureOf(results: Map<string, BuildResult>, path: string): FailureResult {
  const result = results.get(path)!;
  assertEquals(result.status, "failed", `${path} should have failed`);
  return result as FailureResult;
}

/** The failure message of `path`. */
export function messageOf(results: Map<string, BuildResult>, path: string): string {
  return failureOf(results, path).message;
}

/** Each result as `built`, `failed:<reason>` ... */
export function statuses(results: Map<string, BuildResult>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [path, result] of results) {
    out[path] = result.status === "failed" ? `failed:${result.reason}` : result.status;
  }
  return out;
}
