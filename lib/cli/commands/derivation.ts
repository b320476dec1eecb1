/** `kiln derivation add|show`: write checked `.drv` files into the store, print them as JSON. */

import { type Derivation, printDerivationJson } from "../../derivation/mod.ts";
import { decodeNixString } from "../../hashing/mod.ts";
import { readDerivation } from "../../scheduler/mod.ts";
import { LocalStore } from "../../store/mod.ts";
import { addDerivations } from "../_derivation_input.ts";
import { parseCommandArgs, runSubcommand, UsageError } from "../args.ts";
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
  usage: USAGE,
  run: (args) => runSubcommand("derivation", args, { add, show }),
};

async function add(args: string[]): Promise<number> {
  const { positionals, config } = parseCommandArgs(args, {});
  if (positionals.length > 0) {
    throw new UsageError("kiln derivation add takes no arguments; it reads stdin");
  }
  // Nix strings are bytes: keep any that are not UTF-8 (see decodeNixString).
  const text = decodeNixString(
    new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer()),
  );
  const store = LocalStore.open(config());
  try {
    printLines((await addDerivations(store, text)).keys());
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
