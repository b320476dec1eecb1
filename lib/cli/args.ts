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

/** Runs subcommand `args[0]` of `verb`; a missing or unknown one is a UsageError naming them. */
export async function runSubcommand(
  verb: string,
  args: string[],
  subcommands: Subcommands,
): Promise<number> {
  const [sub, ...rest] = args;
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
