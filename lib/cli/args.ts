/** Argument parsing shared by every command: the command's own flags plus the global ones. */

import { parseArgs, type ParseArgsConfig } from "node:util";
import { type Config, type GlobalFlags, resolveConfig } from "./config.ts";

/** A command-line mistake: printed as one line, exit status 1. */
export class UsageError extends TypeError {
  override name = "UsageError";
}

type OptionSpecs = NonNullable<ParseArgsConfig["options"]>;

const GLOBAL_OPTIONS = {
  "store-dir": { type: "string" },
  "store-root": { type: "string" },
  "state-dir": { type: "string" },
  option: { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionSpecs;

/** A command line split at its verb, as `main` dispatches it. */
export interface CommandLine {
  /** The verb, or undefined when the line has none (`kiln`, `kiln --help`). */
  verb?: string;
  /** The verb's arguments, with the global options given before the verb appended. */
  args: string[];
  /** `--help`/`-h` before the verb, or among its arguments (before any `--`). */
  help: boolean;
  /** `--version` before the verb, or among its arguments (before any `--`). */
  version: boolean;
}

/** Global options taking a value, with how many words follow them. */
const GLOBAL_VALUE_WORDS: Record<string, number> = {
  "--store-dir": 1,
  "--store-root": 1,
  "--state-dir": 1,
  "--option": 2,
};

/**
 * Splits `kiln [GLOBAL...] VERB [ARGS...]` at the verb. Global options go before or after the
 * verb, as in `nix --option NAME VALUE build`: those before it are moved after its arguments
 * (before a `--`), where every command's parser takes them. Anything else before the verb that
 * starts with `-` is a UsageError.
 */
export function splitCommandLine(argv: string[]): CommandLine {
  const globals: string[] = [];
  let help = false;
  let version = false;
  let i = 0;
  for (; i < argv.length && argv[i].startsWith("-"); i++) {
    const arg = argv[i];
    const name = arg.split("=", 1)[0];
    if (arg === "--help" || arg === "-h") help = true;
    else if (arg === "--version") version = true;
    else if (arg === "--") throw new UsageError("'--' needs a command before it");
    else if (!Object.hasOwn(GLOBAL_VALUE_WORDS, name)) {
      throw new UsageError(`Unrecognised flag '${arg}' before the command`);
    } else {
      const words = arg === name ? GLOBAL_VALUE_WORDS[name] : 0;
      if (i + words >= argv.length) {
        throw new UsageError(`${name} needs ${words === 2 ? "a NAME and a VALUE" : "a value"}`);
      }
      globals.push(...argv.slice(i, i + words + 1));
      i += words;
    }
  }
  const verb = argv[i];
  const rest = argv.slice(i + 1);
  const dashes = rest.indexOf("--");
  const options = dashes < 0 ? rest : rest.slice(0, dashes);
  help ||= options.includes("--help") || options.includes("-h");
  version ||= options.includes("--version");
  const args = dashes < 0
    ? [...rest, ...globals]
    : [...rest.slice(0, dashes), ...globals, ...rest.slice(dashes)];
  return { verb, args, help, version };
}

/** What a command receives after parsing. */
export interface ParsedArgs<V> {
  values: V;
  positionals: string[];
  /** Resolves store location and settings (read lazily: `hash` never needs them). */
  config(): Config;
}

/**
 * Parses `args` against the command's `options` and the global ones. `--option NAME VALUE`
 * takes two words, as in Nix, so it is folded into `--option=NAME=VALUE` first.
 */
export function parseCommandArgs<O extends OptionSpecs>(
  args: string[],
  options: O,
  env: Record<string, string | undefined> = Deno.env.toObject(),
): ParsedArgs<ReturnType<typeof parseArgs<{ options: O & typeof GLOBAL_OPTIONS }>>["values"]> {
  const folded: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--") {
      folded.push(...args.slice(i));
      break;
    }
    if (args[i] === "--option") {
      if (i + 2 >= args.length) throw new UsageError("--option needs a NAME and a VALUE");
      folded.push(`--option=${args[i + 1]}=${args[i + 2]}`);
      i += 2;
    } else {
      folded.push(args[i]);
    }
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: folded,
      options: { ...options, ...GLOBAL_OPTIONS },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify a positional.*$/, ""));
  }
  const values = parsed.values as Record<string, unknown>;
  const flags: GlobalFlags = {
    storeDir: values["store-dir"] as string | undefined,
    storeRoot: values["store-root"] as string | undefined,
    stateDir: values["state-dir"] as string | undefined,
    options: ((values.option as string[] | undefined) ?? []).map((o) => {
      const eq = o.indexOf("=");
      return [o.slice(0, eq), o.slice(eq + 1)] as [string, string];
    }),
  };
  let config: Config | undefined;
  return {
    values: parsed.values as never,
    positionals: parsed.positionals,
    config: () => config ??= resolveConfig(flags, env),
  };
}

/** A verb's subcommands by name, each taking the arguments after its name. */
export type Subcommands = Record<string, (args: string[]) => number | Promise<number>>;

/**
 * Runs the subcommand of `verb` that `args` name (global options may come before it); a missing
 * or unknown one is a UsageError naming them.
 */
export async function runSubcommand(
  verb: string,
  args: string[],
  subcommands: Subcommands,
): Promise<number> {
  const { verb: sub, args: rest } = splitCommandLine(args);
  const names = Object.keys(subcommands);
  if (sub === undefined) {
    const list = names.length > 1
      ? `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`
      : names.join("");
    throw new UsageError(`kiln ${verb} needs a subcommand: ${list}`);
  }
  if (!Object.hasOwn(subcommands, sub)) throw new UsageError(`Unknown subcommand '${verb} ${sub}'`);
  return await subcommands[sub](rest);
}
