/** Dispatches `kiln VERB ...` to its command and turns a thrown error into one line and status 1. */

import { UsageError } from "./args.ts";
import { type Command, printLines, printStderr } from "./command.ts";
import { buildCommand } from "./commands/build.ts";
import { copyCommand } from "./commands/copy.ts";
import { derivationCommand } from "./commands/derivation.ts";
import { hashCommand } from "./commands/hash.ts";
import { keyCommand } from "./commands/key.ts";
import { logCommand } from "./commands/log.ts";
import { narCommand } from "./commands/nar.ts";
import { serveCommand } from "./commands/serve.ts";
import { storeCommand } from "./commands/store.ts";

export const COMMANDS: readonly Command[] = [
  hashCommand,
  narCommand,
  storeCommand,
  derivationCommand,
  buildCommand,
  logCommand,
  keyCommand,
  copyCommand,
  serveCommand,
];

const TOP_USAGE = `Usage: kiln COMMAND [OPTIONS] [ARGS...]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(12)}${c.summary}`).join("\n")}

Global options (every command):
  --store-dir DIR       logical store dir, inside every hash (default /nix/store; KILN_STORE_DIR)
  --store-root DIR      where the store dir lives on disk ('/' = as it is; KILN_STORE_ROOT)
  --state-dir DIR       database, logs, locks (KILN_STATE_DIR)
  --option NAME VALUE   any setting, as in nix.conf
Run 'kiln COMMAND --help' for a command's usage.`;

/** Runs one command line; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === undefined || verb === "--help" || verb === "-h" || verb === "help") {
    printLines([TOP_USAGE]);
    return verb === undefined ? 1 : 0;
  }
  if (verb === "--version") {
    printLines(["kiln 0.1.0"]);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === verb);
  if (!command) {
    printStderr(`error: unknown command '${verb}'; run 'kiln --help' for the list`);
    return 1;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    printLines([command.usage]);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (e) {
    printStderr(`error: ${describeError(e)}`);
    if (e instanceof UsageError) printStderr(`Try 'kiln ${verb} --help'.`);
    return 1;
  }
}

/** One line for a thrown error; a broken invariant keeps its stack for the bug report. */
function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  if (e.message.startsWith("Internal error")) return e.stack ?? e.message;
  return e.message.split("\n")[0];
}
