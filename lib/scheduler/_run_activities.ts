/**
 * How a build run turns what happens into its events (run_events.ts): `EventSink` hands them to
 * the listener (a throwing listener stops the run), `GoalActivities` turns the worker's goal
 * events into Nix's activities under one parent, with their log lines, progress and errors.
 */

import type { GoalKind } from "./build_result.ts";
import type { Progress, SchedulerEvent } from "./events.ts";
import type { ActivityType, RunEvent, RunListener } from "./run_events.ts";
import { withoutLogTail } from "./_failures.ts";

/** Emits events to the listener; a throwing listener stops the run, which then rejects. */
export class EventSink {
  #nextId = 1;
  #error: { error: unknown } | undefined;

  constructor(
    readonly listener: RunListener | undefined,
    readonly onListenerError: (error: unknown) => void,
  ) {}

  newId(): number {
    return this.#nextId++;
  }

  emit(make: () => RunEvent): void {
    if (this.listener === undefined || this.#error !== undefined) return;
    try {
      this.listener(make());
    } catch (error) {
      this.#error = { error };
      this.onListenerError(error);
    }
  }

  msg(level: "error" | "warn" | "info", text: string): void {
    this.emit(() => ({ type: "msg", level, text }));
  }

  /** Throws what the listener threw, if it did. */
  rethrow(): void {
    if (this.#error !== undefined) throw this.#error.error;
  }
}

const CHILD: Record<"builds" | "copyPaths", ActivityType> = {
  builds: "build",
  copyPaths: "substitute",
};
const KIND: Record<"builds" | "copyPaths", GoalKind> = { builds: "build", copyPaths: "substitute" };

/**
 * Turns the worker's goal events into activities under one parent (`builds` or `copyPaths`),
 * started with the first goal. A goal's log lines are held until its activity starts: a build
 * started early starts only once its dependency has succeeded, and its lines stay in its log when
 * that dependency fails.
 */
export class GoalActivities {
  readonly #events: EventSink;
  readonly #parent: "builds" | "copyPaths";
  #parentId = 0;
  readonly #ids = new Map<string, number>();
  readonly #held = new Map<string, string[]>();

  constructor(events: EventSink, parent: "builds" | "copyPaths") {
    this.#events = events;
    this.#parent = parent;
  }

  onEvent(event: SchedulerEvent, start: { text?: string; name?: string; narSize?: number }): void {
    const events = this.#events;
    if (this.#parentId === 0) {
      const id = this.#parentId = events.newId();
      events.emit(() => ({ type: "start", id, activity: this.#parent, parent: 0, text: "" }));
    }
    // As Nix: a goal's activity starts before the progress that counts it running, and a
    // finished goal's progress and error come before its activity stops.
    if (event.type === "started") {
      const id = events.newId();
      this.#ids.set(event.path, id);
      const text = start.text ?? `copying path '${event.path}'`;
      events.emit(() => ({
        type: "start",
        id,
        activity: CHILD[this.#parent],
        parent: this.#parentId,
        text,
        path: event.path,
        ...(start.name === undefined ? {} : { name: start.name }),
        ...(start.narSize === undefined ? {} : { narSize: start.narSize }),
      }));
      this.#progress(event.progress);
      for (const line of this.#held.get(event.path) ?? []) this.#line(id, line);
    } else {
      const id = this.#ids.get(event.path);
      this.#ids.delete(event.path);
      this.#progress(event.progress);
      const result = event.result;
      if (result.status === "failed" && result.reason !== "cancelled") {
        const text = result.message;
        const brief = withoutLogTail(text);
        events.emit(() => ({
          type: "msg",
          level: "error",
          text,
          ...(brief === text ? {} : { brief }),
        }));
      }
      if (id !== undefined) events.emit(() => ({ type: "stop", id, result }));
    }
    this.#held.delete(event.path);
  }

  logLine(path: string, line: string): void {
    const id = this.#ids.get(path);
    if (id !== undefined) return this.#line(id, line);
    let lines = this.#held.get(path);
    if (lines === undefined) this.#held.set(path, lines = []);
    lines.push(line);
  }

  /** Passes on an estimate of the time left (see `EstimateEvent`). */
  estimate(remaining: number, at: number): void {
    const id = this.#parentId;
    this.#events.emit(() => ({ type: "result", id, result: "estimate", remaining, at }));
  }

  /** Stops the parent activity, if it started. */
  end(): void {
    const id = this.#parentId;
    if (id !== 0) this.#events.emit(() => ({ type: "stop", id }));
    this.#parentId = 0;
  }

  #line(id: number, line: string): void {
    this.#events.emit(() => ({ type: "result", id, result: "buildLogLine", line }));
  }

  /**
   * The parent's progress: running counts the goals whose activity has started (as Nix counts
   * them), not those holding a slot: a build started early runs before it is announced.
   */
  #progress(progress: Progress): void {
    const id = this.#parentId;
    const { done, expected, failed } = progress[KIND[this.#parent]];
    const running = this.#ids.size;
    this.#events.emit(() => ({
      type: "result",
      id,
      result: "progress",
      done,
      expected,
      running,
      failed,
    }));
  }
}
