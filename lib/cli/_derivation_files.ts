/**
 * `.drv` files the store lacks but that exist at their paths, as `nix-instantiate` leaves them in
 * a Nix store whose store dir is kiln's logical one: read with their input derivations and input
 * sources, each checked against its store path, and added, so that `kiln build $(nix-instantiate
 * hello.nix)` is one command.
 */

import { type Derivation, derivationPath, parseDerivation } from "../derivation/mod.ts";
import {
  decodeNixString,
  hashBytes,
  makeFixedOutputPath,
  makeTextPath,
  parseStorePath,
} from "../hashing/mod.ts";
import { hashPath, type LocalStore, pathExists } from "../store/mod.ts";
import { addDerivationEntries } from "./_derivation_input.ts";
import { InternalError } from "../sys/mod.ts";

/** How an input source's contents give its path. */
type SourceKind = { kind: "text"; references: string[] } | { kind: "nar" | "flat" };

interface Found {
  derivations: Map<string, Derivation>;
  /** Sources in dependency order (a text file after the paths it names). */
  sources: Map<string, SourceKind>;
}

/**
 * Adds each of `drvPaths` that is not valid in `store` but exists as a file at its path, with
 * every input derivation and input source it needs from there. A path that is not in the store
 * dir or not there is left alone, for the build to report. Throws, adding nothing, when a `.drv`
 * file does not hash to its path; a source that does not is refused before any is added.
 */
export async function importDerivationFiles(
  store: LocalStore,
  drvPaths: Iterable<string>,
): Promise<void> {
  const found: Found = { derivations: new Map(), sources: new Map() };
  const seen = new Set<string>();
  for (const path of drvPaths) {
    if (isStorePath(store.storeDir, path) && !store.isValidPath(path) && pathExists(path)) {
      visit(path, { store, found, seen });
    }
  }
  if (found.derivations.size === 0) return;
  for (const [path, source] of found.sources) {
    const { name } = parseStorePath(store.storeDir, path);
    const added = source.kind === "text"
      ? await store.addTextToStore(name, Deno.readFileSync(path), source.references)
      : (await store.addPath(path, { name, method: source.kind })).path;
    if (added !== path) throw new InternalError(`added '${added}', expected '${path}'`);
  }
  await addDerivationEntries(
    store,
    [...found.derivations].map(([path, drv]) => ({ path, drv })),
  );
}

function isStorePath(storeDir: string, path: string): boolean {
  try {
    parseStorePath(storeDir, path);
    return true;
  } catch {
    return false;
  }
}

/** Reads `path` (a `.drv` or a source) and what it needs, inputs before it. */
function visit(
  path: string,
  state: { store: LocalStore; found: Found; seen: Set<string> },
): void {
  const { store } = state;
  if (state.seen.has(path) || store.isValidPath(path)) return;
  state.seen.add(path);
  const { name } = parseStorePath(store.storeDir, path);
  if (!pathExists(path)) {
    throw new TypeError(`Path '${path}' is neither valid in the store nor there to be read`);
  }
  if (!name.endsWith(".drv") || !Deno.lstatSync(path).isFile) {
    const source = sourceKind(store.storeDir, path);
    if (source.kind === "text") { for (const ref of source.references) visit(ref, state); }
    state.found.sources.set(path, source);
    return;
  }
  const drv = parseDerivation(decodeNixString(Deno.readFileSync(path)), name.slice(0, -4));
  const computed = derivationPath(store.storeDir, drv);
  if (computed !== path) {
    throw new RangeError(
      `Derivation '${path}' does not hash to its path: its text gives '${computed}'`,
    );
  }
  for (const input of drv.inputDrvs.keys()) visit(input, state);
  for (const src of drv.inputSrcs) visit(src, state);
  state.found.derivations.set(path, drv);
}

/**
 * How the source at `path` was added: a text file naming the store paths in it
 * (`builtins.toFile`), its NAR's sha256 (`./file`, `builtins.path`), or a file's sha256
 * (`builtins.fetchurl`). Throws a RangeError when none gives its path.
 */
function sourceKind(storeDir: string, path: string): SourceKind {
  const { name } = parseStorePath(storeDir, path);
  const stat = Deno.lstatSync(path);
  if (stat.isFile) {
    const contents = Deno.readFileSync(path);
    const hash = hashBytes("sha256", contents);
    const references = namedStorePaths(storeDir, contents).filter((p) => p !== path);
    if (makeTextPath(storeDir, hash, name, references) === path) {
      return { kind: "text", references };
    }
    if (makeFixedOutputPath(storeDir, { method: "flat", hash, name }) === path) {
      return { kind: "flat" };
    }
  }
  const nar = hashPath(path).hash;
  if (makeFixedOutputPath(storeDir, { method: "nar", hash: nar, name }) === path) {
    return { kind: "nar" };
  }
  throw new RangeError(`Input source '${path}' does not hash to its path`);
}

/** The existing store paths whose `<storeDir>/<hash>-<name>` occurs in `bytes`, sorted. */
function namedStorePaths(storeDir: string, bytes: Uint8Array): string[] {
  const text = new TextDecoder("latin1").decode(bytes);
  const escaped = storeDir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const found = new Set<string>();
  for (
    const match of text.matchAll(new RegExp(`${escaped}/[0-9a-z]{32}-[A-Za-z0-9+\\-._?=]+`, "g"))
  ) {
    // The name ends where the text goes on: the longest prefix that exists is the path.
    for (let end = match[0].length; end > storeDir.length + 34; end--) {
      const candidate = match[0].slice(0, end);
      if (pathExists(candidate)) {
        found.add(candidate);
        break;
      }
    }
  }
  return [...found].sort();
}
