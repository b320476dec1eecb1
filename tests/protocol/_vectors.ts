/**
 * Nix's own protocol vectors (tests/testdata/nix-protocol, see its README): each `.bin` is Nix's
 * encoding of the values in the matching `.json`. One table says how to decode, encode and
 * interpret each, for the vector test and the malformed-input test alike.
 */

import { parseHash } from "../../lib/hashing/mod.ts";
import {
  type BuildResult,
  type ContentAddress,
  type DerivedPath,
  readBuildMode,
  readBuildResult,
  readContentAddress,
  readDerivedPath,
  readDrvOutput,
  readKeyedBuildResult,
  readOptionalContentAddress,
  readOptionalStorePath,
  readOptionalTrustedFlag,
  readRealisation,
  readServeBuildResult,
  readServePathInfo,
  readStorePath,
  readUnkeyedValidPathInfo,
  readValidPathInfo,
  type Realisation,
  type RealisationSignature,
  type ServePathInfo,
  type UnkeyedValidPathInfo,
  type WireContext,
  type WireReader,
  WireWriter,
  writeBuildMode,
  writeBuildResult,
  writeDerivedPath,
  writeKeyedBuildResult,
  writeOptionalContentAddress,
  writeOptionalString,
  writeOptionalTrustedFlag,
  writeRealisation,
  writeServeBuildResult,
  writeServePathInfo,
  writeStringSet,
  writeUnkeyedValidPathInfo,
  writeValidPathInfo,
} from "../../lib/protocol/mod.ts";

export const STORE_DIR = "/nix/store";
const DATA = new URL("../testdata/nix-protocol/", import.meta.url);

export function readVectorBytes(dir: string, name: string): Uint8Array {
  return Deno.readFileSync(new URL(`${dir}/${name}.bin`, DATA));
}

export function readVectorJson(dir: string, name: string): unknown[] {
  return JSON.parse(Deno.readTextFileSync(new URL(`${dir}/${name}.json`, DATA)));
}

/** How to handle one vector file: its values are read one after another until the end. */
export interface Vector {
  dir: "common" | "worker" | "serve";
  name: string;
  version: number;
  /** Decodes the whole file into the values it holds. */
  decode(reader: WireReader, ctx: WireContext): unknown[];
  encode(writer: WireWriter, values: unknown[], ctx: WireContext): void;
  /** The values the `.json` names, as this codec represents them. */
  expected(json: unknown[]): unknown[];
}

// deno-lint-ignore no-explicit-any
type Json = any;
type Read<T> = (reader: WireReader, ctx: WireContext) => T;
type Write<T> = (writer: WireWriter, value: T, ctx: WireContext) => void;

/** A vector of N values of one type. */
function each<T>(
  dir: Vector["dir"],
  name: string,
  version: number,
  codec: { read: Read<T>; write: Write<T>; fromJson: (json: Json) => T },
): Vector {
  return {
    dir,
    name,
    version,
    decode: (reader, ctx) => {
      const values: T[] = [];
      while (reader.remaining > 0) values.push(codec.read(reader, ctx));
      return values;
    },
    encode: (writer, values, ctx) => values.forEach((v) => codec.write(writer, v as T, ctx)),
    expected: (json) => json.map(codec.fromJson),
  };
}

const full = (name: string) => `${STORE_DIR}/${name}`;
const sri = (text: string) => parseHash(text);
const sig = (s: Json): string => typeof s === "string" ? s : `${s.keyName}:${s.sig}`;

function caFromJson(json: Json): ContentAddress {
  return { method: json.method, hash: sri(json.hash) };
}

function realisationFromJson(json: Json): Realisation {
  return {
    id: json.id,
    outPath: full(json.outPath),
    signatures: json.signatures as RealisationSignature[],
    dependentRealisations: Object.fromEntries(
      Object.entries(json.dependentRealisations as Record<string, string>).map((
        [k, v],
      ) => [k, full(v)]),
    ),
  };
}

function derivedPathFromJson(json: Json): DerivedPath {
  if (typeof json === "string") return { type: "opaque", path: full(json) };
  const outputs = json.outputs[0] === "*" ? "*" : json.outputs;
  return { type: "built", drvPath: full(json.drvPath), outputs };
}

function buildResultFromJson(json: Json): BuildResult {
  const result: BuildResult = {
    status: json.status,
    errorMsg: json.errorMsg ?? "",
    timesBuilt: json.timesBuilt,
    isNonDeterministic: json.isNonDeterministic ?? false,
    startTime: json.startTime,
    stopTime: json.stopTime,
    builtOutputs: Object.fromEntries(
      Object.values(json.builtOutputs ?? {}).map((r: Json) => [r.id, realisationFromJson(r)]),
    ),
  };
  if (json.cpuUser !== undefined) result.cpuUser = json.cpuUser;
  if (json.cpuSystem !== undefined) result.cpuSystem = json.cpuSystem;
  return result;
}

function unkeyedInfoFromJson(json: Json): UnkeyedValidPathInfo {
  const info: UnkeyedValidPathInfo = {
    narHash: sri(json.narHash),
    references: json.references.map(full),
    registrationTime: json.registrationTime,
    narSize: json.narSize,
    ultimate: json.ultimate,
    sigs: json.signatures.map(sig),
  };
  if (json.deriver !== null) info.deriver = full(json.deriver);
  if (json.ca !== null) info.ca = caFromJson(json.ca);
  return info;
}

/** Serve path infos: JSON has no download size (Nix's test sends the NAR size there). */
function serveInfoFromJson(json: Json, version: number): ServePathInfo {
  const info: ServePathInfo = {
    references: json.references.map(full),
    downloadSize: json.narSize,
    narSize: json.narSize,
    sigs: (version & 0xff) >= 4 ? json.signatures.map(sig) : [],
  };
  if (json.deriver !== null) info.deriver = full(json.deriver);
  if ((version & 0xff) >= 4) {
    info.narHash = sri(json.narHash);
    if (json.ca !== null) info.ca = caFromJson(json.ca);
  }
  return info;
}

const string = {
  read: (r: WireReader) => r.readString(),
  write: (w: WireWriter, s: string) => void w.writeString(s),
  fromJson: (j: Json) => j as string,
};
const storePath = {
  read: readStorePath,
  write: (w: WireWriter, p: string) => void w.writeString(p),
  fromJson: full,
};
const optionalStorePath = {
  read: readOptionalStorePath,
  write: (w: WireWriter, p: string | undefined) => writeOptionalString(w, p),
  fromJson: (j: Json) => j === null ? undefined : full(j),
};
const contentAddress = {
  read: readContentAddress,
  write: writeOptionalContentAddress,
  fromJson: caFromJson,
};
const optionalContentAddress = {
  read: readOptionalContentAddress,
  write: writeOptionalContentAddress,
  fromJson: (j: Json) => j === null ? undefined : caFromJson(j),
};
const drvOutput = { read: readDrvOutput, write: string.write, fromJson: string.fromJson };
const realisation = {
  read: readRealisation,
  write: writeRealisation,
  fromJson: realisationFromJson,
};

/** `vector` and `set`: three lists of strings, then a list of lists of strings. */
function lists(dir: Vector["dir"], name: string, sorted: boolean): Vector {
  const write = (w: WireWriter, items: string[]) =>
    sorted ? writeStringSet(w, items) : void w.writeStrings(items);
  return {
    dir,
    name,
    version: 0,
    decode: (
      r,
    ) => [r.readStrings(), r.readStrings(), r.readStrings(), r.readList((x) => x.readStrings())],
    encode: (w, values) => {
      for (const v of values.slice(0, 3)) write(w, v as string[]);
      w.writeList(values[3] as string[][], write);
    },
    expected: (json) => json,
  };
}

const W = (minor: number) => (1 << 8) | minor;
const S = (minor: number) => (2 << 8) | minor;

export const VECTORS: Vector[] = [
  each("common", "string", 0, string),
  each("common", "store-path", 0, storePath),
  each("common", "optional-store-path", 0, optionalStorePath),
  each("common", "content-address", 0, contentAddress),
  each("common", "optional-content-address", 0, optionalContentAddress),
  each("common", "drv-output", 0, drvOutput),
  each("common", "realisation", 0, realisation),
  each("common", "realisation-with-deps", 0, realisation),
  lists("common", "vector", false),
  lists("common", "set", true),
  each("worker", "build-mode", W(34), {
    read: readBuildMode,
    write: writeBuildMode,
    fromJson: (j: Json) => (["normal", "repair", "check"] as const)[j],
  }),
  each("worker", "optional-trusted-flag", W(35), {
    read: readOptionalTrustedFlag,
    write: writeOptionalTrustedFlag,
    fromJson: (j: Json) => j ?? undefined,
  }),
  ...[29, 30].map((minor) =>
    each("worker", `derived-path-1.${minor}`, W(minor), {
      read: readDerivedPath,
      write: writeDerivedPath,
      fromJson: derivedPathFromJson,
    })
  ),
  ...[27, 28, 29, 37].map((minor) =>
    each("worker", `build-result-1.${minor}`, W(minor), {
      read: readBuildResult,
      write: writeBuildResult,
      fromJson: buildResultFromJson,
    })
  ),
  each("worker", "keyed-build-result-1.29", W(29), {
    read: readKeyedBuildResult,
    write: writeKeyedBuildResult,
    fromJson: (j: Json) => ({ path: derivedPathFromJson(j.path), ...buildResultFromJson(j) }),
  }),
  each("worker", "unkeyed-valid-path-info-1.15", W(15), {
    read: readUnkeyedValidPathInfo,
    write: writeUnkeyedValidPathInfo,
    fromJson: unkeyedInfoFromJson,
  }),
  ...[15, 16].map((minor) =>
    each("worker", `valid-path-info-1.${minor}`, W(minor), {
      read: readValidPathInfo,
      write: writeValidPathInfo,
      fromJson: (j: Json) => ({ path: full(j.path), ...unkeyedInfoFromJson(j) }),
    })
  ),
  ...[2, 3, 6].map((minor) =>
    each("serve", `build-result-2.${minor}`, S(minor), {
      read: readServeBuildResult,
      write: writeServeBuildResult,
      fromJson: buildResultFromJson,
    })
  ),
  ...[3, 4].map((minor) =>
    each("serve", `unkeyed-valid-path-info-2.${minor}`, S(minor), {
      read: readServePathInfo,
      write: writeServePathInfo,
      fromJson: (j: Json) => serveInfoFromJson(j, S(minor)),
    })
  ),
];
