/** `kiln store gc|delete|add-root`: roots and the garbage collector. */

import { parseStorePath } from "../../hashing/mod.ts";
import {
  addPermRoot,
  collectGarbage,
  deletePaths,
  findDeadPaths,
  findLivePaths,
  type GcResult,
  listRoots,
  LocalStore,
} from "../../store/mod.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import { gcLiveness } from "../build_settings.ts";
import { printLines, printStderr } from "../command.ts";

export const STORE_GC_USAGE = `  kiln store gc [--max-freed BYTES] [--dry-run]
      delete the paths no root keeps alive (as 'nix-store --gc'), then files in the store dir
      of no valid path; --dry-run prints the dead paths and deletes nothing
  kiln store gc --print-roots | --print-live | --print-dead
      print the roots ('LINK -> PATH', {temp:PID} for a running process's), or the live
      or dead paths, one per line
  kiln store delete [--ignore-liveness] PATH...
      delete PATHs (as 'nix-store --delete'), refusing a live one unless --ignore-liveness
  kiln store add-root LINK PATH
      make LINK a symlink to PATH, registered as a root under <state dir>/gcroots/auto
Roots are symlinks under <state dir>/gcroots and <state dir>/profiles, followed once through a
symlink outside the store; 'kiln build -o LINK' registers its out-links. The store paths running
processes use (their executable, working directory, open and mapped files, environment, read
from /proc) are roots too ('/proc/PID/cwd -> PATH'), unless gc-runtime-roots = false. The
settings keep-outputs and keep-derivations keep their Nix meaning.`;

export async function gcCommand(args: string[]): Promise<number> {
  const { values, positionals, config } = parseCommandArgs(args, {
    "max-freed": { type: "string" },
    "dry-run": { type: "boolean" },
    "print-roots": { type: "boolean" },
    "print-live": { type: "boolean" },
    "print-dead": { type: "boolean" },
  });
  if (positionals.length > 0) throw new UsageError("kiln store gc takes no PATH");
  const prints = ["print-roots", "print-live", "print-dead"] as const;
  const print = prints.filter((p) => values[p]);
  if (print.length > 1) throw new UsageError(`--${print[0]} and --${print[1]} exclude each other`);
  const maxFreed = values["max-freed"] === undefined ? undefined : parseBytes(values["max-freed"]);
  const conf = config();
  const store = LocalStore.open(conf);
  try {
    const liveness = gcLiveness(conf.settings);
    if (print[0] === "print-roots") {
      printLines(listRoots(store, liveness).map(([link, path]) => `${link} -> ${path}`));
    } else if (print[0] === "print-live") {
      printLines(findLivePaths(store, liveness));
    } else if (print[0] === "print-dead" || values["dry-run"]) {
      printLines(findDeadPaths(store, liveness));
    } else {
      printFreed(await collectGarbage(store, { ...liveness, maxFreed, onDelete: announce }));
    }
    return 0;
  } finally {
    store.close();
  }
}

export async function deleteCommand(args: string[]): Promise<number> {
  const { values, positionals, config } = parseCommandArgs(args, {
    "ignore-liveness": { type: "boolean" },
  });
  if (positionals.length === 0) throw new UsageError("kiln store delete needs at least one PATH");
  const conf = config();
  const store = LocalStore.open(conf);
  try {
    for (const path of positionals) parseStorePath(store.storeDir, path);
    printFreed(
      await deletePaths(store, positionals, {
        ...gcLiveness(conf.settings),
        ignoreLiveness: values["ignore-liveness"],
        onDelete: announce,
      }),
    );
    return 0;
  } finally {
    store.close();
  }
}

export async function addRootCommand(args: string[]): Promise<number> {
  const { positionals, config } = parseCommandArgs(args, {});
  if (positionals.length !== 2) throw new UsageError("kiln store add-root needs LINK and PATH");
  const store = LocalStore.open(config());
  try {
    parseStorePath(store.storeDir, positionals[1]);
    await addPermRoot(store, positionals[0], positionals[1]);
    printLines([positionals[0]]);
    return 0;
  } finally {
    store.close();
  }
}

function announce(path: string): void {
  printStderr(`deleting '${path}'`);
}

/** As nix-store's summary line. */
function printFreed(result: GcResult): void {
  const mib = (result.bytesFreed / (1024 * 1024)).toFixed(2);
  printLines([`${result.deleted.length} store paths deleted, ${mib} MiB freed`]);
}

function parseBytes(text: string): number {
  if (!/^[0-9]+$/.test(text)) throw new UsageError(`--max-freed '${text}' is not a byte count`);
  return Number(text);
}
