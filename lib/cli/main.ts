/** Dispatches `kiln VERB ...` to its command and turns a thrown error into one line and status 1. */

// The file itself, not sys/mod.ts: every command starts here, and it needs nothing else of sys.
import { InternalError } from "../sys/internal_error.ts";
import { type CommandLine, splitCommandLine, UsageError } from "./args.ts";
import { type CommandEntry, printLines, printStderr } from "./command.ts";
/**
 * Every verb, with the one line `kiln --help` shows. A command's module is loaded only when it
 * runs, so that `kiln hash` does not pay for loading the build engine or the cache codecs.
 */
export const COMMANDS: readonly CommandEntry[] = [
  {
    name: "hash",
    summary: "hash paths and files, convert hash formats",
    load: () => import("./commands/hash.ts").then((m) => m.hashCommand),
  },
  {
    name: "nar",
    summary: "dump, restore and list Nix archives (NAR)",
    load: () => import("./commands/nar.ts").then((m) => m.narCommand),
  },
  {
    name: "store",
    summary: "add paths to the store, show path metadata, sign paths",
    load: () => import("./commands/store.ts").then((m) => m.storeCommand),
  },
  {
    name: "derivation",
    summary: "add .drv files from JSON or ATerm, show derivations as JSON",
    load: () => import("./commands/derivation.ts").then((m) => m.derivationCommand),
  },
  {
    name: "build",
    summary: "build derivations and print their output paths",
    load: () => import("./commands/build.ts").then((m) => m.buildCommand),
  },
  {
    name: "why-depends",
    summary: "show why a store path depends on another, as nix why-depends",
    load: () => import("./commands/why_depends.ts").then((m) => m.whyDependsCommand),
  },
  {
    name: "log",
    summary: "print the build log of a derivation or output path",
    load: () => import("./commands/log.ts").then((m) => m.logCommand),
  },
  {
    name: "key",
    summary: "generate binary cache signing keys, print a secret key's public key",
    load: () => import("./commands/key.ts").then((m) => m.keyCommand),
  },
  {
    name: "copy",
    summary: "copy paths to or from a binary cache",
    load: () => import("./commands/copy.ts").then((m) => m.copyCommand),
  },
  {
    name: "serve",
    summary: "serve the store as a binary cache over HTTP",
    load: () => import("./commands/serve.ts").then((m) => m.serveCommand),
  },
  {
    name: "daemon",
    summary: "serve Nix's worker protocol, so that Nix's own tools use the kiln store",
    load: () => import("./commands/daemon.ts").then((m) => m.daemonCommand),
  },
];

const TOP_USAGE = `Usage: kiln COMMAND [OPTIONS] [ARGS...]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(12)}${c.summary}`).join("\n")}

Global options (every command, before or after it):
  --store-dir DIR       logical store dir, inside every hash (default /nix/store; KILN_STORE_DIR)
  --store-root DIR      where the store dir lives on disk ('/' = as it is; KILN_STORE_ROOT)
  --state-dir DIR       database, logs, locks (KILN_STATE_DIR)
  --option NAME VALUE   any setting, as in nix.conf
  --help, --version     this text or a command's usage; kiln's version
Run 'kiln COMMAND --help' for a command's usage.`;

/** Runs one command line; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  let line: CommandLine;
  try {
    line = splitCommandLine(argv);
  } catch (e) {
    printStderr(`error: ${describeError(e)}; run 'kiln --help' for the usage`);
    return 1;
  }
  const { verb, args } = line;
  if (line.version) {
    printLines(["kiln 0.1.0"]);
    return 0;
  }
  if (verb === undefined || verb === "help") {
    printLines([TOP_USAGE]);
    return verb === undefined && !line.help ? 1 : 0;
  }
  const entry = COMMANDS.find((c) => c.name === verb);
  if (!entry) {
    printStderr(`error: unknown command '${verb}'; run 'kiln --help' for the list`);
    return 1;
  }
  try {
    const command = await entry.load();
    if (line.help) {
      printLines([command.usage]);
      return 0;
    }
    return await command.run(args);
  } catch (e) {
    printStderr(`error: ${describeError(e)}`);
    if (e instanceof UsageError) printStderr(`Try 'kiln ${verb} --help'.`);
    return 1;
  }
}

/** One line for a thrown error; a broken invariant keeps its stack for the bug report. */
function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  if (e instanceof InternalError) return e.stack ?? e.message;
  return e.message.split("\n")[0];
}
