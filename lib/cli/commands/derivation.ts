/** `kiln derivation add|show`: write checked `.drv` files into the store, print them as JSON. */

import {
  checkOutputPaths,
  decodeDerivationBytes,
  type Derivation,
  type DerivationHashCache,
  type DerivationJsonEntry,
  derivationPath,
  derivationReferences,
  isUtf8Text,
  orderByDependencies,
  parseDerivation,
  parseDerivationJsonText,
  parseDerivations,
  printDerivation,
  printDerivationJson,
} from "../../derivation/mod.ts";
import { parseStorePath } from "../../hashing/mod.ts";
import { LocalStore } from "../../store/mod.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import { type Command, printLines } from "../command.ts";

const USAGE = `Usage:
  kiln derivation add < INPUT
      read derivations from stdin and write their .drv files into the store, printing each
      .drv path on its own line. INPUT is the JSON of 'nix show-derivation [-r]' (Nix 2.8) or
      of 'nix derivation show' (any later version), or ATerm text: one or more 'Derive(...)'
      terms separated by whitespace, each named by its env.name. Derivations are added in
      dependency order. Every output path is recomputed and must match; every input must be
      in the document or already valid in the store; a .drv path given as a JSON key must be
      the one its contents give. Nothing is added unless all of them pass.
  kiln derivation show [--recursive|-r] [--pretty] DRV-PATH...
      print the derivations as current Nix's 'nix derivation show' does: one JSON document
      {"derivations":{...},"version":4} keyed by .drv base name. --recursive adds every input
      derivation of their closure. Compact unless --pretty (default when stdout is a terminal).`;

export const derivationCommand: Command = {
  name: "derivation",
  summary: "add .drv files from JSON or ATerm, show derivations as JSON",
  usage: USAGE,
  async run(args) {
    const [sub, ...rest] = args;
    switch (sub) {
      case "add":
        return await add(rest);
      case "show":
        return show(rest);
      default:
        throw new UsageError(
          sub === undefined
            ? "kiln derivation needs a subcommand: add or show"
            : `Unknown subcommand 'derivation ${sub}'`,
        );
    }
  },
};

/** Reads the `.drv` at `path` from the store; throws naming it when it is not valid. */
function readDerivation(store: LocalStore, path: string): Derivation {
  const { name } = parseStorePath(store.storeDir, path);
  if (!name.endsWith(".drv")) throw new TypeError(`Path '${path}' is not a derivation (.drv)`);
  if (!store.isValidPath(path)) throw new TypeError(`Path '${path}' is not valid in the store`);
  const text = decodeDerivationBytes(Deno.readFileSync(store.physicalPath(path)));
  return parseDerivation(text, name.slice(0, -".drv".length));
}

/** JSON (any Nix layout) or ATerm terms, told apart by the first character. */
function parseInput(text: string, storeDir: string): DerivationJsonEntry[] {
  const start = text.trimStart();
  if (start === "") throw new UsageError("No derivations on stdin");
  if (!start.startsWith("{")) return parseDerivations(text).map((drv) => ({ drv }));
  const entries = parseDerivationJsonText(text, storeDir);
  if (entries.length === 0) throw new TypeError("The JSON on stdin holds no derivations");
  return entries;
}

interface PlannedDerivation {
  path: string;
  drv: Derivation;
  aterm: string;
  outputs: Map<string, string>;
}

/** Checks every entry and returns them in dependency order; adds nothing. */
function planAdd(entries: DerivationJsonEntry[], store: LocalStore): PlannedDerivation[] {
  const storeDir = store.storeDir;
  const document = new Map<string, Derivation>();
  const given = new Map<string, string>();
  for (const { path, drv } of entries) {
    const computed = derivationPath(storeDir, drv);
    document.set(computed, drv);
    if (path !== undefined) given.set(computed, path);
  }
  const resolve = (path: string) => document.get(path) ?? readDerivation(store, path);
  const cache: DerivationHashCache = new Map();
  return orderByDependencies(document).map((path) => {
    const drv = document.get(path)!;
    for (const src of drv.inputSrcs) {
      if (!document.has(src) && !store.isValidPath(src)) {
        throw new TypeError(
          `Input source '${src}' of derivation '${drv.name}' is not valid in the store`,
        );
      }
    }
    for (const input of drv.inputDrvs.keys()) {
      if (!document.has(input) && !store.isValidPath(input)) {
        throw new TypeError(
          `Input derivation '${input}' of derivation '${drv.name}' is not valid in the store`,
        );
      }
    }
    const outputs = checkOutputPaths(storeDir, drv, resolve, { cache });
    const key = given.get(path);
    if (key !== undefined && key !== path) {
      throw new RangeError(
        `Derivation '${drv.name}' is given as '${key}', but its contents give '${path}'`,
      );
    }
    const aterm = printDerivation(drv);
    if (!isUtf8Text(aterm)) {
      throw new RangeError(
        `Derivation '${drv.name}' holds bytes that are not UTF-8, which kiln's store cannot write yet`,
      );
    }
    return { path, drv, aterm, outputs };
  });
}

async function add(args: string[]): Promise<number> {
  const { positionals, config } = parseCommandArgs(args, {});
  if (positionals.length > 0) {
    throw new UsageError("kiln derivation add takes no arguments; it reads stdin");
  }
  // Nix strings are bytes: keep any that are not UTF-8 (see decodeDerivationBytes).
  const text = decodeDerivationBytes(
    new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer()),
  );
  const store = LocalStore.open(config());
  try {
    const plan = planAdd(parseInput(text, store.storeDir), store);
    const lines: string[] = [];
    for (const { path, drv, aterm, outputs } of plan) {
      const added = await store.addTextToStore(
        drv.name + ".drv",
        aterm,
        derivationReferences(drv),
        { derivationOutputs: outputs },
      );
      if (added !== path) throw new Error(`Internal error: added '${added}', expected '${path}'`);
      lines.push(path);
    }
    printLines(lines);
    return 0;
  } finally {
    store.close();
  }
}

function show(args: string[]): number {
  const { values, positionals, config } = parseCommandArgs(args, {
    recursive: { type: "boolean", short: "r" },
    pretty: { type: "boolean" },
  });
  if (positionals.length === 0) throw new UsageError("kiln derivation show needs a DRV-PATH");
  const store = LocalStore.open(config());
  try {
    const found = new Map<string, Derivation>();
    const queue = [...positionals];
    for (let i = 0; i < queue.length; i++) {
      const path = queue[i];
      if (found.has(path)) continue;
      const drv = readDerivation(store, path);
      found.set(path, drv);
      if (values.recursive) {
        // As Nix's closure: input derivations, and sources that are themselves .drv files.
        queue.push(...drv.inputDrvs.keys(), ...drv.inputSrcs.filter((p) => p.endsWith(".drv")));
      }
    }
    const entries = [...found].map(([path, drv]) => ({ path, drv }));
    const pretty = values.pretty ?? Deno.stdout.isTerminal();
    printLines([printDerivationJson(entries, store.storeDir, { pretty })]);
    return 0;
  } finally {
    store.close();
  }
}
