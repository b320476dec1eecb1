/**
 * Requests and replies of single worker operations, as Nix 2.8's `daemon.cc` reads and writes
 * them: AddToStore (1.25's layout), AddTextToStore, AddToStoreNar, QueryMissing's reply and
 * QueryDerivationOutputMap's. Each is what follows the op number (or LAST, for a reply).
 */

import type { HashAlgorithm } from "../hashing/mod.ts";
import { protocolMinor } from "./handshake.ts";
import { readValidPathInfo, type ValidPathInfo, writeValidPathInfo } from "./path_info.ts";
import {
  readOptionalStorePath,
  readStorePaths,
  sortedEntries,
  type WireContext,
  writeOptionalString,
  writeStringSet,
} from "./values.ts";
import type { WireReader, WireWriter } from "./wire.ts";

/** AddToStore from 1.25: the data (framed) follows, a NAR for `nar`, the contents otherwise. */
export interface AddToStoreRequest {
  name: string;
  /** `text:sha256`, `fixed:r:<algo>` or `fixed:<algo>`; see {@link parseContentAddressMethod}. */
  method: string;
  references: string[];
  repair: boolean;
}

export function readAddToStoreRequest(reader: WireReader, ctx: WireContext): AddToStoreRequest {
  if (protocolMinor(ctx.version) < 25) {
    throw reader.error("AddToStore before protocol 1.25 has another layout");
  }
  return {
    name: reader.readString("name"),
    method: reader.readString("content-address method"),
    references: readStorePaths(reader, ctx),
    repair: reader.readBool("repair flag"),
  };
}

export function writeAddToStoreRequest(writer: WireWriter, request: AddToStoreRequest): void {
  writer.writeString(request.name).writeString(request.method);
  writeStringSet(writer, request.references);
  writer.writeBool(request.repair);
}

/** How AddToStore's data is hashed: `text` (sha256 only), `nar` (fixed:r:) or `flat` (fixed:). */
export interface ContentAddressMethod {
  method: "text" | "nar" | "flat";
  algorithm: HashAlgorithm;
}

/** Parses AddToStore's method; throws a SyntaxError naming it. */
export function parseContentAddressMethod(text: string): ContentAddressMethod {
  const m = /^(text|fixed:r|fixed):(md5|sha1|sha256|sha512)$/.exec(text);
  if (m === null || (m[1] === "text" && m[2] !== "sha256")) {
    throw new SyntaxError(`Content-address method '${text}' is not text:sha256 or fixed:...`);
  }
  const method = m[1] === "text" ? "text" : m[1] === "fixed:r" ? "nar" : "flat";
  return { method, algorithm: m[2] as HashAlgorithm };
}

/** AddTextToStore: a name, the text, its references. */
export interface AddTextToStoreRequest {
  name: string;
  text: Uint8Array;
  references: string[];
}

export function readAddTextToStoreRequest(
  reader: WireReader,
  ctx: WireContext,
): AddTextToStoreRequest {
  return {
    name: reader.readString("name"),
    text: reader.readBytes("text").slice(),
    references: readStorePaths(reader, ctx),
  };
}

export function writeAddTextToStoreRequest(
  writer: WireWriter,
  request: AddTextToStoreRequest,
): void {
  writer.writeString(request.name).writeBytes(request.text);
  writeStringSet(writer, request.references);
}

/** AddToStoreNar: the path's info and two flags; the NAR follows (framed from 1.23). */
export interface AddToStoreNarRequest {
  info: ValidPathInfo;
  repair: boolean;
  dontCheckSigs: boolean;
}

export function readAddToStoreNarRequest(
  reader: WireReader,
  ctx: WireContext,
): AddToStoreNarRequest {
  const info = readValidPathInfo(reader, ctx);
  const repair = reader.readBool("repair flag");
  return { info, repair, dontCheckSigs: reader.readBool("dontCheckSigs flag") };
}

export function writeAddToStoreNarRequest(
  writer: WireWriter,
  request: AddToStoreNarRequest,
  ctx: WireContext,
): void {
  writeValidPathInfo(writer, request.info, ctx);
  writer.writeBool(request.repair).writeBool(request.dontCheckSigs);
}

/** QueryMissing's reply. */
export interface MissingReply {
  willBuild: string[];
  willSubstitute: string[];
  unknown: string[];
  downloadSize: number;
  narSize: number;
}

export function readMissingReply(reader: WireReader, ctx: WireContext): MissingReply {
  return {
    willBuild: readStorePaths(reader, ctx),
    willSubstitute: readStorePaths(reader, ctx),
    unknown: readStorePaths(reader, ctx),
    downloadSize: reader.readInt("download size"),
    narSize: reader.readInt("NAR size"),
  };
}

export function writeMissingReply(writer: WireWriter, reply: MissingReply): void {
  writeStringSet(writer, reply.willBuild);
  writeStringSet(writer, reply.willSubstitute);
  writeStringSet(writer, reply.unknown);
  writer.writeInt(reply.downloadSize).writeInt(reply.narSize);
}

/** QueryDerivationOutputMap's reply: output name to its path, where it is known. */
export function readDerivationOutputMap(
  reader: WireReader,
  ctx: WireContext,
): Map<string, string | undefined> {
  const outputs = new Map<string, string | undefined>();
  const count = reader.readCount("derivation output map");
  for (let i = 0; i < count; i++) {
    const name = reader.readString("output name");
    outputs.set(name, readOptionalStorePath(reader, ctx));
  }
  return outputs;
}

export function writeDerivationOutputMap(
  writer: WireWriter,
  outputs: ReadonlyMap<string, string | undefined>,
): void {
  const entries = sortedEntries(outputs);
  writer.writeInt(entries.length);
  for (const [name, path] of entries) {
    writer.writeString(name);
    writeOptionalString(writer, path);
  }
}
