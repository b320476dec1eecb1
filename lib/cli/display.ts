/**
 * How `--log-format` shows a build run on stderr: `raw` plain lines, `internal-json` Nix's event
 * lines, `bar` a status line with messages above it, `bar-with-logs` that and builders' lines.
 * The default is `bar` on a terminal (`bar-with-logs` with `-L`) and `raw` elsewhere; a status
 * line asked for where stderr is no terminal gives the plain lines, without escape codes.
 */

import type { RunListener } from "../scheduler/mod.ts";
import { UsageError } from "./args.ts";
import { writeStderr } from "./command.ts";
import { internalJson, plainLines } from "./render.ts";
import { StatusLine } from "./status_line.ts";

/** A renderer of a run's events; `close()` leaves the terminal clean. */
export interface Display {
  onEvent: RunListener;
  /** Whether the run should estimate the time left (the status line's ETA). */
  estimate: boolean;
  close(): void;
}

export const LOG_FORMATS = ["raw", "internal-json", "bar", "bar-with-logs"] as const;

/** The display `format` names (undefined: the default), `-L` asking for builders' lines. */
export function openDisplay(format: string | undefined, printLogs: boolean): Display {
  const terminal = Deno.stderr.isTerminal();
  const chosen = format ?? (terminal ? "bar" : "raw");
  switch (chosen) {
    case "raw":
      return plain(printLogs);
    case "internal-json":
      return { onEvent: internalJson(), estimate: false, close() {} };
    case "bar":
    case "bar-with-logs": {
      const withLogs = printLogs || chosen === "bar-with-logs";
      if (!terminal) return plain(withLogs);
      const line = new StatusLine({
        printLogs: withLogs,
        write: writeStderr,
        columns: () => Deno.consoleSize().columns,
      });
      return { onEvent: line.listener, estimate: true, close: () => line.close() };
    }
    default:
      throw new UsageError(
        `Unknown --log-format '${format}': expected ${LOG_FORMATS.join(", ")}`,
      );
  }
}

function plain(printLogs: boolean): Display {
  return { onEvent: plainLines({ printLogs }), estimate: false, close() {} };
}
