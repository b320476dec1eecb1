/** The derivation value: what a `.drv` file holds, independent of its ATerm or JSON text. */

import type { Hash } from "../hashing/mod.ts";

/** How a content-addressed output's contents are hashed (`r:` = nar, `text:` = text in ATerm). */
export type ContentAddressMethod = "flat" | "nar" | "text";

/** How an output's path is determined. */
export type DerivationOutput =
  /** Input-addressed: the path comes from the derivation's modulo hash. */
  | { kind: "inputAddressed"; path: string }
  /** Fixed-output: content hash known in advance (`method` nar = `r:` prefix in ATerm). */
  | { kind: "fixed"; path: string; method: ContentAddressMethod; hash: Hash }
  /** Content-addressed with the hash unknown until built (ca-derivations). */
  | { kind: "floating"; method: ContentAddressMethod; algorithm: Hash["algorithm"] }
  /** Input-addressed whose path cannot be known yet (depends on a floating output). */
  | { kind: "deferred" }
  /** Impure derivations (impure-derivations). */
  | { kind: "impure"; method: ContentAddressMethod; algorithm: Hash["algorithm"] };

/**
 * A derivation. Maps iterate in sorted key order once parsed; printers sort again, so a value
 * built by hand prints the same whatever order its maps were filled in.
 * Structured attributes stay in `env` as the `__json` string, byte for byte as in the `.drv`.
 */
export interface Derivation {
  /** Derivation name (the `.drv` path's name without `.drv`; `env.name` in practice). */
  name: string;
  outputs: Map<string, DerivationOutput>;
  /** Input derivation path → output names wanted from it. */
  inputDrvs: Map<string, string[]>;
  /** Input source store paths. */
  inputSrcs: string[];
  system: string;
  builder: string;
  args: string[];
  env: Map<string, string>;
}

/** The env key holding structured attributes as compact JSON. */
export const STRUCTURED_ATTRS_KEY = "__json";

/**
 * The structured attributes of `drv` as a JSON object (numbers as JavaScript numbers), or
 * undefined when it has none. Throws a SyntaxError for text that is not JSON, a TypeError for
 * JSON that is not an object.
 */
export function structuredAttrs(drv: Derivation): Record<string, unknown> | undefined {
  const text = drv.env.get(STRUCTURED_ATTRS_KEY);
  if (text === undefined) return undefined;
  const attrs: unknown = JSON.parse(text);
  if (typeof attrs !== "object" || attrs === null || Array.isArray(attrs)) {
    throw new TypeError(
      `Attribute '${STRUCTURED_ATTRS_KEY}' of derivation '${drv.name}' is not a JSON object`,
    );
  }
  return attrs as Record<string, unknown>;
}
