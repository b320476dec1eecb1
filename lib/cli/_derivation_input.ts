/**
 * Derivation documents on stdin (JSON of any Nix layout, or ATerm terms), checked and added to
 * the store in dependency order: shared by `kiln derivation add` and `kiln build -`.
 */

import {
  checkOutputPaths,
  type Derivation,
  type DerivationHashCache,
  type DerivationJsonEntry,
  derivationPath,
  derivationReferences,
  orderByDependencies,
  parseDerivationJsonText,
  parseDerivations,
  printDerivation,
} from "../derivation/mod.ts";
import { encodeNixString } from "../hashing/mod.ts";
import { readDerivation } from "../scheduler/mod.ts";
import type { LocalStore } from "../store/mod.ts";
import { UsageError } from "./args.ts";
import { InternalError } from "../sys/mod.ts";

/** JSON (any Nix layout) or ATerm terms, told apart by the first character. */
export function parseDerivationInput(text: string, storeDir: string): DerivationJsonEntry[] {
  const start = text.trimStart();
  if (start === "") throw new UsageError("No derivations on stdin");
  if (!start.startsWith("{")) return parseDerivations(text).map((drv) => ({ drv }));
  const entries = parseDerivationJsonText(text, storeDir);
  if (entries.length === 0) throw new TypeError("The JSON on stdin holds no derivations");
  return entries;
}

interface PlannedAdd {
  path: string;
  drv: Derivation;
  aterm: string;
  outputs: Map<string, string>;
}

/** Checks every entry and returns them in dependency order; adds nothing. */
function planAdd(entries: DerivationJsonEntry[], store: LocalStore): PlannedAdd[] {
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
    return { path, drv, aterm: printDerivation(drv), outputs };
  });
}

/**
 * Checks the derivations of `text` and writes their `.drv` files into the store (nothing unless
 * all pass). Returns them by `.drv` path, in dependency order.
 */
export function addDerivations(store: LocalStore, text: string): Promise<Map<string, Derivation>> {
  return addDerivationEntries(store, parseDerivationInput(text, store.storeDir));
}

/** As {@link addDerivations}, for derivations already parsed (each given path is checked). */
export async function addDerivationEntries(
  store: LocalStore,
  entries: DerivationJsonEntry[],
): Promise<Map<string, Derivation>> {
  const plan = planAdd(entries, store);
  const added = new Map<string, Derivation>();
  for (const { path, drv, aterm, outputs } of plan) {
    // Nix strings are bytes: encodeNixString gives back any that are not UTF-8.
    const written = await store.addTextToStore(
      drv.name + ".drv",
      encodeNixString(aterm),
      derivationReferences(drv),
      { derivationOutputs: outputs },
    );
    if (written !== path) throw new InternalError(`added '${written}', expected '${path}'`);
    added.set(path, drv);
  }
  return added;
}
