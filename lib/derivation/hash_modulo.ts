/**
 * Nix's `hashDerivationModulo` and what it decides: the output paths of a derivation and the
 * path of its `.drv` file. Input derivations are hashed once each (memoised per drv path) and
 * walked without recursion, so deep chains and wide graphs take linear time and no stack.
 */

import {
  encodeNixString,
  type Hash,
  hashBytes,
  makeOutputPath,
  makeTextPath,
  outputPathName,
} from "../hashing/mod.ts";
import { printDerivation } from "./aterm.ts";
import type { Derivation } from "./derivation.ts";
import { fixedOutputPath, printMethodAlgo } from "./_method.ts";
import { InternalError, unreachable } from "../sys/mod.ts";

/** What kind of derivation `drv` is, from its outputs (all outputs must agree). */
export type DerivationType = "inputAddressed" | "deferred" | "fixed" | "floating" | "impure";

/** A derivation's modulo hash: one per output; `deferred` when a path cannot be known yet. */
export interface DerivationHash {
  kind: "regular" | "deferred";
  hashes: Map<string, Hash>;
}

/** Resolves an input derivation's path to its contents (reads the store, or a document). */
export type ResolveDerivation = (drvPath: string) => Derivation;

/** Memo of {@link hashDerivationModulo} results by drv path; share it across calls. */
export type DerivationHashCache = Map<string, DerivationHash>;

/** Options of the hashing functions. */
export interface HashModuloOptions {
  /** Memo shared across calls (one per store is safe: drv paths name their contents). */
  cache?: DerivationHashCache;
}

/** Classifies `drv` as Nix's `Derivation::type()` does; throws a TypeError for mixed outputs. */
export function derivationType(drv: Derivation): DerivationType {
  const kinds = new Set([...drv.outputs.values()].map((o) => o.kind));
  if (kinds.size === 0) throw new TypeError(`Derivation '${drv.name}' has no outputs`);
  if (kinds.has("impure")) {
    if (kinds.size > 1) {
      throw new TypeError(`Derivation '${drv.name}' mixes impure and other outputs`);
    }
    return "impure";
  }
  if (kinds.size > 1) {
    throw new TypeError(
      `Derivation '${drv.name}' mixes output kinds (${[...kinds].sort().join(", ")})`,
    );
  }
  const [kind] = kinds;
  if (kind === "fixed" && (drv.outputs.size !== 1 || !drv.outputs.has("out"))) {
    throw new TypeError(
      `Fixed-output derivation '${drv.name}' must have exactly one output, named 'out'`,
    );
  }
  return kind;
}

const IMPURE_HASH = hashBytes("sha256", "impure");

/** Base-16 text of input hashes, kept: wide graphs print each input's hash many times. */
const hexCache = new WeakMap<Hash, string>();
function hexOf(hash: Hash): string {
  let hex = hexCache.get(hash);
  if (hex === undefined) hexCache.set(hash, hex = hash.toString("base16"));
  return hex;
}

/** The modulo hash of `drv` given its inputs' hashes (all already in `cache`). */
function hashOne(
  drv: Derivation,
  cache: DerivationHashCache,
  maskOutputs: boolean,
): DerivationHash {
  const type = derivationType(drv);
  if (type === "fixed") {
    const out = drv.outputs.get("out")!;
    if (out.kind !== "fixed") throw new InternalError("fixed type without fixed output");
    const text = `fixed:out:${printMethodAlgo(out.method, out.hash.algorithm)}:${
      out.hash.toString("base16")
    }:${out.path}`;
    return { kind: "regular", hashes: new Map([["out", hashBytes("sha256", text)]]) };
  }
  if (type === "impure") {
    return {
      kind: "deferred",
      hashes: new Map([...drv.outputs.keys()].map((o) => [o, IMPURE_HASH])),
    };
  }
  let deferred = type === "floating";
  const inputs = new Map<string, string[]>();
  for (const [path, wanted] of drv.inputDrvs) {
    const input = cache.get(path);
    if (!input) throw new InternalError(`input '${path}' of '${drv.name}' not hashed`);
    if (input.kind === "deferred") deferred = true;
    for (const output of wanted) {
      const hash = input.hashes.get(output);
      if (!hash) {
        throw new RangeError(
          `Derivation '${drv.name}' wants output '${output}' of '${path}', which has no such output`,
        );
      }
      const hex = hexOf(hash);
      inputs.set(hex, [...(inputs.get(hex) ?? []), output]);
    }
  }
  const aterm = printDerivation({ ...drv, inputDrvs: inputs }, { maskOutputs });
  const hash = hashBytes("sha256", encodeNixString(aterm));
  return {
    kind: deferred ? "deferred" : "regular",
    hashes: new Map([...drv.outputs.keys()].map((o) => [o, hash])),
  };
}

/** Hashes every input derivation reachable from `drv` into `cache`, deepest first, iteratively. */
function hashInputs(drv: Derivation, resolve: ResolveDerivation, cache: DerivationHashCache): void {
  if (derivationType(drv) === "fixed") return;
  type Frame = { path: string; drv?: Derivation };
  const stack: Frame[] = [...drv.inputDrvs.keys()].map((path) => ({ path }));
  const open = new Set<string>();
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    if (cache.has(frame.path)) {
      stack.pop();
      continue;
    }
    if (frame.drv === undefined) {
      if (open.has(frame.path)) {
        throw new RangeError(`Derivation '${frame.path}' depends on itself`);
      }
      open.add(frame.path);
      frame.drv = resolve(frame.path);
      if (derivationType(frame.drv) !== "fixed") {
        for (const input of frame.drv.inputDrvs.keys()) {
          if (!cache.has(input)) stack.push({ path: input });
        }
      }
      continue;
    }
    stack.pop();
    open.delete(frame.path);
    cache.set(frame.path, hashOne(frame.drv, cache, false));
  }
}

/**
 * Nix's `hashDerivationModulo`: fixed-output derivations hash to their content address, others
 * to the sha256 of their ATerm with each input drv path replaced by that input's hash.
 * With `maskOutputs` the output paths and output env vars are blanked first.
 */
export function hashDerivationModulo(
  drv: Derivation,
  resolve: ResolveDerivation,
  options: HashModuloOptions & { maskOutputs?: boolean } = {},
): DerivationHash {
  const cache = options.cache ?? new Map();
  hashInputs(drv, resolve, cache);
  return hashOne(drv, cache, options.maskOutputs ?? false);
}

/**
 * The output paths `drv` must have, by output name; `undefined` where the path is not known
 * before building (floating, impure, or depending on such a derivation).
 */
export function computeOutputPaths(
  storeDir: string,
  drv: Derivation,
  resolve: ResolveDerivation,
  options: HashModuloOptions = {},
): Map<string, string | undefined> {
  const paths = new Map<string, string | undefined>();
  const type = derivationType(drv);
  switch (type) {
    case "fixed":
      for (const [name, output] of drv.outputs) {
        if (output.kind !== "fixed") throw new InternalError("fixed type, other output");
        paths.set(
          name,
          fixedOutputPath(storeDir, { ...output, name: outputPathName(drv.name, name) }),
        );
      }
      return paths;
    case "floating":
    case "impure":
      for (const name of drv.outputs.keys()) paths.set(name, undefined);
      return paths;
    case "inputAddressed":
    case "deferred": {
      const { kind, hashes } = hashDerivationModulo(drv, resolve, {
        ...options,
        maskOutputs: true,
      });
      for (const [name, hash] of hashes) {
        paths.set(
          name,
          kind === "deferred" ? undefined : makeOutputPath(storeDir, name, hash, drv.name),
        );
      }
      return paths;
    }
    default:
      return unreachable(type);
  }
}

/** A derivation whose recorded output path (or output env var) is not the one Nix computes. */
export class DerivationOutputError extends RangeError {
  override name = "DerivationOutputError";

  constructor(
    readonly derivation: string,
    readonly output: string,
    readonly expected: string,
    what = "output",
  ) {
    super(`Derivation '${derivation}' has incorrect ${what} '${output}', should be '${expected}'`);
  }
}

/**
 * Checks every output path recorded in `drv` against the computed one, and the env var named
 * after each output; throws a {@link DerivationOutputError} naming the first wrong output.
 * Returns the computed paths (known ones only) for registering the derivation's outputs.
 */
export function checkOutputPaths(
  storeDir: string,
  drv: Derivation,
  resolve: ResolveDerivation,
  options: HashModuloOptions = {},
): Map<string, string> {
  const computed = computeOutputPaths(storeDir, drv, resolve, options);
  const known = new Map<string, string>();
  for (const [name, output] of drv.outputs) {
    const expected = computed.get(name);
    if (expected === undefined) continue;
    known.set(name, expected);
    if ((output.kind === "inputAddressed" || output.kind === "fixed") && output.path !== expected) {
      throw new DerivationOutputError(drv.name, name, expected);
    }
    if (output.kind === "deferred") throw new DerivationOutputError(drv.name, name, expected);
    if (drv.env.get(name) !== expected) {
      throw new DerivationOutputError(drv.name, name, expected, "environment variable");
    }
  }
  return known;
}

/** Store paths a `.drv` refers to: its input sources and input derivations. */
export function derivationReferences(drv: Derivation): string[] {
  return [...new Set([...drv.inputSrcs, ...drv.inputDrvs.keys()])];
}

/** The `.drv` file's store path: a text path over its ATerm, referring to its inputs. */
export function derivationPath(storeDir: string, drv: Derivation): string {
  const aterm = encodeNixString(printDerivation(drv));
  return makeTextPath(
    storeDir,
    hashBytes("sha256", aterm),
    drv.name + ".drv",
    derivationReferences(drv),
  );
}
