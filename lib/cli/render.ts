/**
 * Renderers of a build run's events (lib/scheduler/run_events.ts) on stderr. `plainLines` prints
 * what Nix's simple logger prints: `building '<drv>'...`, `copying path '<path>'...`, messages
 * with their `error:` / `warning:` prefix, and with `-L` each builder line prefixed with its
 * derivation's name. `internalJson` prints Nix's `--log-format internal-json` lines (`@nix {...}`,
 * libutil/logging.cc's JSONLogger, keys sorted as Nix's JSON library sorts them), which tools
 * that follow Nix's builds read (nix-output-monitor).
 */

import { messageText, type RunEvent, type RunListener } from "../scheduler/mod.ts";
import { printStderr } from "./command.ts";
import { unreachable } from "../sys/mod.ts";

/** Plain lines on stderr, no escape codes. */
export function plainLines(options: { printLogs: boolean }): RunListener {
  const names = new Map<number, string>();
  return (event: RunEvent) => {
    switch (event.type) {
      case "start":
        if (event.activity === "build") names.set(event.id, event.name ?? "");
        if (event.text === "") return;
        printStderr(
          `${event.text}${event.narSize === undefined ? "" : ` (${event.narSize} bytes)`}...`,
        );
        return;
      case "stop":
        names.delete(event.id);
        return;
      case "result":
        if (event.result === "buildLogLine" && options.printLogs) {
          printStderr(`${names.get(event.id)}> ${event.line}`);
        }
        return;
      case "msg":
        printStderr(messageText(event));
        return;
      default:
        return unreachable(event);
    }
  };
}

/** Nix's `ActivityType` and `ResultType` numbers, and its verbosity levels. */
const ACTIVITY = { copyPaths: 103, builds: 104, build: 105, substitute: 108 } as const;
const RESULT = { buildLogLine: 101, progress: 105 } as const;
const LEVEL = { error: 0, warn: 1, info: 3 } as const;

/** `@nix {...}` lines, as Nix 2.8's `--log-format internal-json`. */
export function internalJson(): RunListener {
  const line = (json: Record<string, unknown>) => printStderr(`@nix ${JSON.stringify(json)}`);
  return (event: RunEvent) => {
    switch (event.type) {
      case "start": {
        const { id, activity } = event;
        const type = ACTIVITY[activity];
        // A build's fields: the derivation, the machine ("" = here), this round and the rounds.
        if (activity === "build") {
          const fields = [event.path, "", 1, 1];
          return line({ action: "start", fields, id, level: LEVEL.info, text: event.text, type });
        }
        if (activity === "substitute") {
          return line({ action: "start", fields: [event.path, ""], id, level: 0, text: "", type });
        }
        return line({ action: "start", id, level: 0, text: "", type });
      }
      case "stop":
        return line({ action: "stop", id: event.id });
      case "result": {
        if (event.result === "estimate") return; // kiln's own: Nix has no such result
        const fields = event.result === "buildLogLine"
          ? [event.line]
          : [event.done, event.expected, event.running, event.failed];
        return line({ action: "result", fields, id: event.id, type: RESULT[event.result] });
      }
      case "msg": {
        const level = LEVEL[event.level];
        if (event.level === "error") {
          // Nix's JSON logger counts as verbose: it gets no log tail.
          const text = event.brief ?? event.text;
          const msg = `error: ${text}`;
          return line({
            action: "msg",
            column: null,
            file: null,
            level,
            line: null,
            msg,
            raw_msg: text,
          });
        }
        // Nix prints a plan line by line.
        for (const text of event.text.split("\n")) {
          line({ action: "msg", level, msg: messageText({ ...event, text }) });
        }
        return;
      }
      default:
        return unreachable(event);
    }
  };
}
