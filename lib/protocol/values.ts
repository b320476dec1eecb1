/**
 * Values both protocols share (`common-protocol.cc`, `worker-protocol.cc` @2.8): store paths in
 * full, path sets, content addresses, optional values sent as "", derivation outputs and
 * realisations (JSON text on the wire), derived paths and build modes.
 */

import {
  type Hash,
  parseHash,
  parseStorePath,
  parseStorePathBaseName,
  renderContentAddress,
} from "../hashing/mod.ts";
import { protocolMinor } from "./handshake.ts";
import { WireFormatError, type WireReader, type WireWriter } from "./wire.ts";

/** The store directory values are checked against, and the negotiated protocol version. */
export interface WireContext {
  storeDir: string;
  /** `major << 8 | minor`; only versioned codecs read it. */
  version: number;
}

/** Runs `parse` on text read at `start`, turning its SyntaxError or RangeError into ours. */
export function parseAt<T>(start: number, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof WireFormatError) throw e;
    if (e instanceof SyntaxError || e instanceof RangeError) {
      throw new WireFormatError(e.message, start);
    }
    throw e;
  }
}

/** A full store path, validated against the store dir. */
export function readStorePath(reader: WireReader, ctx: Pick<WireContext, "storeDir">): string {
  const start = reader.offset;
  const path = reader.readString("store path");
  parseAt(start, () => parseStorePath(ctx.storeDir, path));
  return path;
}

/** A store path or "" for none. */
export function readOptionalStorePath(
  reader: WireReader,
  ctx: Pick<WireContext, "storeDir">,
): string | undefined {
  const start = reader.offset;
  const path = reader.readString("store path");
  if (path === "") return undefined;
  parseAt(start, () => parseStorePath(ctx.storeDir, path));
  return path;
}

export function writeOptionalString(writer: WireWriter, value: string | undefined): void {
  writer.writeString(value ?? "");
}

/** A set of store paths, in the order sent. */
export function readStorePaths(reader: WireReader, ctx: Pick<WireContext, "storeDir">): string[] {
  return reader.readList((r) => readStorePath(r, ctx), "store path set");
}

/** A set of strings, written sorted as a C++ `std::set` iterates. */
export function writeStringSet(writer: WireWriter, items: Iterable<string>): void {
  writer.writeStrings(sortedUnique(items));
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortedUnique(items: Iterable<string>): string[] {
  return [...new Set(items)].sort(compareStrings);
}

/** A map's entries sorted by key, as a C++ `std::map` iterates (and Nix writes) them. */
export function sortedEntries<V>(map: ReadonlyMap<string, V>): [string, V][] {
  return [...map].sort(([a], [b]) => compareStrings(a, b));
}

/** A content address: how a path's contents were hashed, and the hash. */
export interface ContentAddress {
  method: "text" | "flat" | "nar";
  hash: Hash;
}

/** `text:sha256:<nix32>`, `fixed:sha1:<nix32>`, `fixed:r:sha256:<nix32>`. */
export function printContentAddress(ca: ContentAddress): string {
  return renderContentAddress(ca.method, ca.hash);
}

/** Parses the text form; throws a SyntaxError naming it. */
export function parseContentAddress(text: string): ContentAddress {
  if (text.startsWith("text:")) {
    const hash = parseHash(text.slice(5));
    if (hash.algorithm !== "sha256") {
      throw new SyntaxError(`Content address '${text}': text hashing needs sha256`);
    }
    return { method: "text", hash };
  }
  if (text.startsWith("fixed:r:")) return { method: "nar", hash: parseHash(text.slice(8)) };
  if (text.startsWith("fixed:")) return { method: "flat", hash: parseHash(text.slice(6)) };
  throw new SyntaxError(`Content address '${text}' is not text:... or fixed:...`);
}

/** A content address or "" for none. */
export function readOptionalContentAddress(reader: WireReader): ContentAddress | undefined {
  const start = reader.offset;
  const text = reader.readString("content address");
  return text === "" ? undefined : parseAt(start, () => parseContentAddress(text));
}

export function readContentAddress(reader: WireReader): ContentAddress {
  const ca = readOptionalContentAddress(reader);
  if (ca === undefined) throw reader.error("Empty content address");
  return ca;
}

export function writeOptionalContentAddress(
  writer: WireWriter,
  ca: ContentAddress | undefined,
): void {
  writer.writeString(ca ? printContentAddress(ca) : "");
}

/** Checks a `DrvOutput` id, `sha256:<hex>!out`; throws a SyntaxError naming it. */
export function validateDrvOutput(id: string): void {
  const bang = id.lastIndexOf("!");
  if (bang <= 0 || bang === id.length - 1) {
    throw new SyntaxError(`Derivation output id '${id}' is not '<hash>!<output>'`);
  }
  parseHash(id.slice(0, bang));
}

export function readDrvOutput(reader: WireReader): string {
  const start = reader.offset;
  const id = reader.readString("derivation output id");
  parseAt(start, () => validateDrvOutput(id));
  return id;
}

/** A signature as realisation JSON carries it: `key:base64` (2.8), or split (newer Nix). */
export type RealisationSignature = string | { keyName: string; sig: string };

/** A realisation of a content-addressed derivation output (its JSON, with full paths). */
export interface Realisation {
  id: string;
  outPath: string;
  signatures: RealisationSignature[];
  /** DrvOutput id → store path. */
  dependentRealisations: Record<string, string>;
}

/** Realisation JSON as Nix dumps it: keys sorted, compact, store paths as base names. */
export function printRealisationJson(realisation: Realisation, storeDir: string): string {
  const base = (path: string) => path.slice(storeDir.length + 1);
  const deps = Object.fromEntries(
    sortedUnique(Object.keys(realisation.dependentRealisations)).map((
      k,
    ) => [k, base(realisation.dependentRealisations[k])]),
  );
  return JSON.stringify({
    dependentRealisations: deps,
    id: realisation.id,
    outPath: base(realisation.outPath),
    signatures: realisation.signatures.map((s) =>
      typeof s === "string" ? s : { keyName: s.keyName, sig: s.sig }
    ),
  });
}

/** Parses realisation JSON; throws a SyntaxError naming the field that is wrong. */
export function parseRealisationJson(text: string, storeDir: string): Realisation {
  const json: unknown = JSON.parse(text);
  const object = (v: unknown, what: string) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      throw new SyntaxError(`Realisation ${what} is not a JSON object`);
    }
    return v as Record<string, unknown>;
  };
  const string = (v: unknown, what: string) => {
    if (typeof v !== "string") throw new SyntaxError(`Realisation ${what} is not a string`);
    return v;
  };
  const path = (v: unknown, what: string) => {
    const name = string(v, what);
    parseStorePathBaseName(name);
    return `${storeDir}/${name}`;
  };
  const top = object(json, "");
  const id = string(top.id, "id");
  validateDrvOutput(id);
  const signatures = top.signatures ?? [];
  if (!Array.isArray(signatures)) throw new SyntaxError("Realisation signatures is not a list");
  const deps = object(top.dependentRealisations ?? {}, "dependentRealisations");
  return {
    id,
    outPath: path(top.outPath, "outPath"),
    signatures: signatures.map((s): RealisationSignature => {
      if (typeof s === "string") return s;
      const o = object(s, "signature");
      return { keyName: string(o.keyName, "keyName"), sig: string(o.sig, "sig") };
    }),
    dependentRealisations: Object.fromEntries(
      Object.entries(deps).map(([k, v]) => {
        validateDrvOutput(k);
        return [k, path(v, `dependency ${k}`)];
      }),
    ),
  };
}

export function readRealisation(reader: WireReader, ctx: Pick<WireContext, "storeDir">) {
  const start = reader.offset;
  const text = reader.readString("realisation");
  return parseAt(start, () => parseRealisationJson(text, ctx.storeDir));
}

export function writeRealisation(
  writer: WireWriter,
  realisation: Realisation,
  ctx: Pick<WireContext, "storeDir">,
): void {
  writer.writeString(printRealisationJson(realisation, ctx.storeDir));
}

/** `DrvOutputs`: DrvOutput id → realisation. */
export function readDrvOutputs(
  reader: WireReader,
  ctx: Pick<WireContext, "storeDir">,
): Record<string, Realisation> {
  const out: Record<string, Realisation> = {};
  const count = reader.readCount("derivation outputs");
  for (let i = 0; i < count; i++) {
    const id = readDrvOutput(reader);
    out[id] = readRealisation(reader, ctx);
  }
  return out;
}

export function writeDrvOutputs(
  writer: WireWriter,
  outputs: Record<string, Realisation>,
  ctx: Pick<WireContext, "storeDir">,
): void {
  const ids = sortedUnique(Object.keys(outputs));
  writer.writeInt(ids.length);
  for (const id of ids) {
    writer.writeString(id);
    writeRealisation(writer, outputs[id], ctx);
  }
}

/** A path to build or to have: a store path, or outputs of a derivation (`*` for all). */
export type DerivedPath =
  | { type: "opaque"; path: string }
  | { type: "built"; drvPath: string; outputs: "*" | string[] };

/** `/nix/store/...-foo`, `/nix/store/...-bar.drv!*`, `/nix/store/...-bar.drv!out,dev`. */
export function printDerivedPath(path: DerivedPath): string {
  if (path.type === "opaque") return path.path;
  const outputs = path.outputs === "*" ? "*" : sortedUnique(path.outputs).join(",");
  return `${path.drvPath}!${outputs}`;
}

/** Parses the text form as 2.8 does; throws a SyntaxError naming it. */
export function parseDerivedPath(text: string, storeDir: string): DerivedPath {
  const bang = text.indexOf("!");
  if (bang < 0) {
    parseStorePath(storeDir, text);
    return { type: "opaque", path: text };
  }
  const drvPath = text.slice(0, bang);
  parseStorePath(storeDir, drvPath);
  const spec = text.slice(bang + 1);
  if (spec === "*") return { type: "built", drvPath, outputs: "*" };
  const outputs = spec.split(",");
  if (outputs.some((o) => o === "" || o === "*")) {
    throw new SyntaxError(`Derived path '${text}' has an invalid output list`);
  }
  return { type: "built", drvPath, outputs };
}

/**
 * A derived path at `ctx.version`. Before 1.30 a bare `.drv` path meant all its outputs (Nix's
 * `StorePathWithOutputs`), so a built path with `*` is sent that way and an opaque `.drv` path
 * cannot be sent at all; from 1.30 on the text form above is used as it is.
 */
export function readDerivedPath(reader: WireReader, ctx: WireContext): DerivedPath {
  const start = reader.offset;
  const text = reader.readString("derived path");
  const path = parseAt(start, () => parseDerivedPath(text, ctx.storeDir));
  if (protocolMinor(ctx.version) < 30 && path.type === "opaque" && path.path.endsWith(".drv")) {
    return { type: "built", drvPath: path.path, outputs: "*" };
  }
  return path;
}

export function writeDerivedPath(writer: WireWriter, path: DerivedPath, ctx: WireContext): void {
  if (protocolMinor(ctx.version) >= 30) {
    writer.writeString(printDerivedPath(path));
  } else if (path.type === "built") {
    writer.writeString(path.outputs === "*" ? path.drvPath : printDerivedPath(path));
  } else if (path.path.endsWith(".drv")) {
    throw new RangeError(
      `Derivation path '${path.path}' cannot be sent as an opaque path before protocol 1.30`,
    );
  } else {
    writer.writeString(path.path);
  }
}

/** `BuildMode`: 0 normal, 1 repair, 2 check. */
export type BuildMode = "normal" | "repair" | "check";
const BUILD_MODES: readonly BuildMode[] = ["normal", "repair", "check"];

export function readBuildMode(reader: WireReader): BuildMode {
  const n = reader.readInt("build mode");
  const mode = BUILD_MODES[n];
  if (mode === undefined) throw reader.error(`Invalid build mode ${n}`);
  return mode;
}

export function writeBuildMode(writer: WireWriter, mode: BuildMode): void {
  writer.writeInt(BUILD_MODES.indexOf(mode));
}
