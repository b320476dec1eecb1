/** `kiln store verify` and `kiln store optimise`: as `nix-store --verify` and `--optimise`. */

import { parseStorePath } from "../../hashing/mod.ts";
import {
  LocalStore,
  type OptimiseEvent,
  optimiseStore,
  type VerifyEvent,
  verifyStore,
} from "../../store/mod.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import { printStderr, warn } from "../command.ts";
import { unreachable } from "../../sys/mod.ts";

/** Usage lines for the `store` command's text. */
export const STORE_VERIFY_USAGE =
  `  kiln store verify [--check-contents] [--repair] [--all | PATH...]
      as 'nix-store --verify': every valid path (or each PATH) must exist on disk (a missing
      one nothing valid refers to is dropped from the database); with --check-contents the
      .links entries and the paths' contents are rehashed against their names and recorded NAR
      hashes. Each problem is named on stderr; exit 1 when any is left. --repair removes
      corrupt .links entries, fetches corrupt or missing paths again from the substituters
      or else rebuilds them (their deriver, in the sandbox) as 'kiln build --repair'
  kiln store optimise
      as 'nix-store --optimise': hard-link identical files through <store>/.links, report the
      bytes freed`;

/** Runs `kiln store verify ARGS`. */
export async function verifyPaths(args: string[]): Promise<number> {
  const { values, positionals, config } = parseCommandArgs(args, {
    "check-contents": { type: "boolean" },
    repair: { type: "boolean" },
    all: { type: "boolean" },
  });
  if (values.all && positionals.length > 0) throw new UsageError("--all and PATH do not mix");
  const settings = config();
  const store = LocalStore.open(settings);
  const repairer = values.repair
    ? (await import("./_store_repair.ts")).makeRepairer(store, settings)
    : undefined;
  try {
    for (const path of positionals) parseStorePath(store.storeDir, path);
    const errors = await verifyStore(store, {
      checkContents: values["check-contents"],
      paths: positionals.length > 0 ? positionals : undefined,
      repair: repairer && ((path) => repairer.repair(path)),
      onEvent: (event) => printStderr(renderVerifyEvent(event)),
    });
    if (!errors) return 0;
    warn("not all store errors were fixed");
    return 1;
  } finally {
    repairer?.[Symbol.dispose]();
    store.close();
  }
}

/** An event as Nix 2.8 words it. */
function renderVerifyEvent(event: VerifyEvent): string {
  switch (event.type) {
    case "phase":
      return PHASES[event.phase];
    case "disappeared":
      return event.invalidated
        ? `path '${event.path}' disappeared, removing from database...`
        : `path '${event.path}' disappeared, but it still has valid referrers!`;
    case "link-modified":
      return `link '${event.link}' was modified! expected hash '${event.expected}', got '${event.got}'`;
    case "link-removed":
      return `removed link '${event.link}'`;
    case "modified":
      return `path '${event.path}' was modified! expected hash '${event.expected.toNix32Prefixed()}', got '${event.got.toNix32Prefixed()}'`;
    case "size-updated":
      return `updating size field on '${event.path}' to ${event.size}`;
    case "failed":
      return `error: ${event.error.message}`;
    default:
      return unreachable(event);
  }
}

const PHASES = {
  reading: "reading the Nix store...",
  existence: "checking path existence...",
  links: "checking link hashes...",
  contents: "checking store hashes...",
} as const;

/** Runs `kiln store optimise`. */
export function optimise(args: string[]): number {
  const { positionals, config } = parseCommandArgs(args, {});
  if (positionals.length > 0) throw new UsageError("kiln store optimise takes no PATH");
  const store = LocalStore.open(config());
  try {
    const stats = optimiseStore(store, { onEvent: (event) => warn(renderOptimiseEvent(event)) });
    printStderr(
      `${
        (stats.bytesFreed / 1048576).toFixed(2)
      } MiB freed by hard-linking ${stats.filesLinked} files`,
    );
    return 0;
  } finally {
    store.close();
  }
}

function renderOptimiseEvent(event: OptimiseEvent): string {
  switch (event.type) {
    case "writable":
      return `skipping suspicious writable file '${event.file}'`;
    case "corrupt-link":
      return `removing corrupted link '${event.link}'`;
    case "too-many-links":
      return `'${event.link}' has maximum number of links`;
    default:
      return unreachable(event);
  }
}
