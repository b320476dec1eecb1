/** `kiln store export` and `kiln store import`: Nix's `nix-store --export` / `--import` format. */

import { parseStorePath } from "../../hashing/mod.ts";
import { exportPaths, importPaths, LocalStore } from "../../store/mod.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import { printLines } from "../command.ts";

/** Usage lines for the `store` command's text. */
export const STORE_EXPORT_USAGE = `  kiln store export PATH... > FILE
      write the valid PATHs (not their closures; dependencies first) to stdout in the format of
      'nix-store --export': NARs with references and deriver
  kiln store import < FILE
      add the paths of such a file (from kiln or 'nix-store --export'), each once its references
      are valid, and print them; as in Nix they come without signatures or content address`;

/** Runs `kiln store export ARGS`. */
export async function exportCommand(args: string[]): Promise<number> {
  const { positionals, config } = parseCommandArgs(args, {});
  if (positionals.length === 0) throw new UsageError("kiln store export needs at least one PATH");
  const store = LocalStore.open(config());
  try {
    for (const path of positionals) parseStorePath(store.storeDir, path);
    const out = Deno.stdout.writable.getWriter();
    try {
      for await (const chunk of exportPaths(store, positionals)) await out.write(chunk);
    } finally {
      out.releaseLock();
    }
    return 0;
  } finally {
    store.close();
  }
}

/** Runs `kiln store import ARGS`. */
export async function importCommand(args: string[]): Promise<number> {
  const { positionals, config } = parseCommandArgs(args, {});
  if (positionals.length > 0) throw new UsageError("kiln store import reads stdin, takes no PATH");
  const store = LocalStore.open(config());
  try {
    printLines(await importPaths(store, Deno.stdin.readable));
    return 0;
  } finally {
    store.close();
  }
}
