/**
 * The live status line at the bottom of a terminal (`--log-format bar`, `bar-with-logs`): what a
 * build run's events tell, redrawn a few times a second. Messages (and, with logs, builders'
 * lines) scroll above it. It shows builds done/running/waiting, substitutions done/running and
 * the bytes they copied, each running build's name with its elapsed time and last log line, and
 * the time left where the run has an estimate.
 */

import { messageText, type RunEvent, type RunListener } from "../scheduler/mod.ts";
import { unreachable } from "../sys/mod.ts";

/** Where the status line draws, and its clock. */
export interface StatusLineOptions {
  /** Print builders' lines above the line (`bar-with-logs`, `-L`). */
  printLogs: boolean;
  write(text: string): void;
  /** The terminal's width. */
  columns(): number;
  now?: () => number;
  /** Milliseconds between redraws; default 200. */
  interval?: number;
}

interface Running {
  name: string;
  start: number;
  lastLine: string;
}

interface Counts {
  done: number;
  expected: number;
  running: number;
  failed: number;
}

const NONE: Counts = { done: 0, expected: 0, running: 0, failed: 0 };

/** A status line; `listener` takes the run's events, `close()` clears the line. */
export class StatusLine {
  readonly listener: RunListener;
  readonly #options: StatusLineOptions;
  readonly #now: () => number;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #builds = new Map<number, Running>();
  readonly #parents = new Map<number, "builds" | "copyPaths">();
  #counts: Record<"builds" | "copyPaths", Counts> = { builds: NONE, copyPaths: NONE };
  #copiedBytes = 0;
  readonly #narSizes = new Map<number, number>();
  #estimate: { remaining: number; at: number } | undefined;
  #shown = "";

  constructor(options: StatusLineOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.listener = (event) => this.#take(event);
    this.#timer = setInterval(() => this.#draw(), options.interval ?? 200);
  }

  /** Stops redrawing and clears the line. */
  close(): void {
    clearInterval(this.#timer);
    this.#clear();
  }

  #take(event: RunEvent): void {
    switch (event.type) {
      case "start":
        if (event.activity === "builds" || event.activity === "copyPaths") {
          this.#parents.set(event.id, event.activity);
        } else if (event.activity === "build") {
          this.#builds.set(event.id, { name: event.name ?? "", start: this.#now(), lastLine: "" });
        } else if (event.narSize !== undefined) this.#narSizes.set(event.id, event.narSize);
        break;
      case "stop": {
        this.#builds.delete(event.id);
        const size = this.#narSizes.get(event.id);
        this.#narSizes.delete(event.id);
        if (size !== undefined && event.result?.status !== "failed") this.#copiedBytes += size;
        break;
      }
      case "result":
        if (event.result === "buildLogLine") {
          const build = this.#builds.get(event.id);
          if (build !== undefined) build.lastLine = event.line;
          if (this.#options.printLogs) this.#above(`${build?.name ?? ""}> ${event.line}`);
        } else if (event.result === "progress") {
          const parent = this.#parents.get(event.id);
          if (parent !== undefined) this.#counts[parent] = { ...event };
        } else this.#estimate = { remaining: event.remaining, at: event.at };
        break;
      case "msg":
        this.#above(messageText(event));
        return;
      default:
        return unreachable(event);
    }
    this.#draw();
  }

  /** Prints `text` above the status line. */
  #above(text: string): void {
    this.#clear();
    this.#options.write(text.endsWith("\n") ? text : text + "\n");
    this.#draw();
  }

  #draw(): void {
    const line = fit(this.#render(), this.#options.columns());
    if (line === this.#shown) return;
    this.#options.write(`\r\x1b[K${line}`);
    this.#shown = line;
  }

  #clear(): void {
    if (this.#shown === "") return;
    this.#options.write("\r\x1b[K");
    this.#shown = "";
  }

  #render(): string {
    const now = this.#now();
    const { builds, copyPaths } = this.#counts;
    const parts: string[] = [];
    if (builds.expected > 0) {
      const waiting = builds.expected - builds.done - builds.running - builds.failed;
      const failed = builds.failed > 0 ? `, ${builds.failed} failed` : "";
      parts.push(
        `${builds.done}/${builds.expected} built, ${builds.running} running, ${waiting} waiting${failed}`,
      );
    }
    if (copyPaths.expected > 0) {
      parts.push(
        `${copyPaths.done}/${copyPaths.expected} copied (${mib(this.#copiedBytes)}), ` +
          `${copyPaths.running} running`,
      );
    }
    if (this.#estimate !== undefined) {
      const left = this.#estimate.remaining - (now - this.#estimate.at);
      parts.push(`ETA ${duration(Math.max(0, left))}`);
    }
    if (parts.length === 0) return "";
    const running = [...this.#builds.values()].map((build) => {
      const last = build.lastLine === "" ? "" : `: ${build.lastLine}`;
      return `${build.name} ${duration(now - build.start)}${last}`;
    });
    return [`[${parts.join(" | ")}]`, ...running].join(" ");
  }
}

/** `text` cut to `columns` characters, control characters shown as spaces. */
function fit(text: string, columns: number): string {
  // deno-lint-ignore no-control-regex
  const clean = text.replace(/[\x00-\x1f\x7f]/g, " ");
  return clean.length < columns ? clean : clean.slice(0, Math.max(0, columns - 1));
}

/** `12s`, `3m05s`, `1h02m`. */
export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}
