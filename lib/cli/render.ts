/**
 * Renderers of a build run's events (lib/scheduler/run_events.ts) for the terminal. `plainLines`
 * prints what Nix's simple logger prints: `building '<drv>'...`, `copying path '<path>'...`,
 * messages with their `error:` / `warning:` prefix, and with `-L` each builder line prefixed with
 * its derivation's name.
 */

import type { RunEvent, RunListener } from "../scheduler/mod.ts";
import { printStderr } from "./command.ts";

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
        printStderr(`${PREFIX[event.level]}${event.text}`);
        return;
      default:
        return unreachable(event);
    }
  };
}

const PREFIX = { error: "error: ", warn: "warning: ", info: "" } as const;

function unreachable(value: never): never {
  throw new TypeError(`Internal error: unexpected event ${JSON.stringify(value)}`);
}
