/**
 * Path metadata on the wire: `ValidPathInfo` / `UnkeyedValidPathInfo` of the worker protocol
 * (QueryPathInfo, AddToStoreNar) and the serve protocol's QueryPathInfos entries.
 */

import { type Hash, parseHash } from "../hashing/mod.ts";
import { protocolMinor } from "./handshake.ts";
import {
  type ContentAddress,
  parseAt,
  readOptionalContentAddress,
  readOptionalStorePath,
  readStorePath,
  readStorePaths,
  type WireContext,
  writeOptionalContentAddress,
  writeOptionalString,
  writeStringSet,
} from "./values.ts";
import type { WireReader, WireWriter } from "./wire.ts";
import { InternalError } from "../sys/mod.ts";

/** A valid path's metadata without the path itself. */
export interface UnkeyedValidPathInfo {
  deriver?: string;
  /** sha256 of the NAR (hex without prefix on the worker wire). */
  narHash: Hash;
  references: string[];
  /** Seconds since the epoch. */
  registrationTime: number;
  narSize: number;
  /** Built locally, trusted without signatures (>= 1.16). */
  ultimate: boolean;
  /** `key:base64` signatures (>= 1.16). */
  sigs: string[];
  /** Content address (>= 1.16). */
  ca?: ContentAddress;
}

export interface ValidPathInfo extends UnkeyedValidPathInfo {
  path: string;
}

/** Reads the worker protocol's unkeyed path info (QueryPathInfo's reply after its flag). */
export function readUnkeyedValidPathInfo(
  reader: WireReader,
  ctx: WireContext,
): UnkeyedValidPathInfo {
  const deriver = readOptionalStorePath(reader, ctx);
  const start = reader.offset;
  const hex = reader.readString("NAR hash");
  const narHash = parseAt(start, () => parseHash(hex, "sha256"));
  const info: UnkeyedValidPathInfo = {
    narHash,
    references: readStorePaths(reader, ctx),
    registrationTime: reader.readInt("registration time"),
    narSize: reader.readInt("NAR size"),
    ultimate: false,
    sigs: [],
  };
  if (deriver !== undefined) info.deriver = deriver;
  if (protocolMinor(ctx.version) >= 16) {
    info.ultimate = reader.readBool("ultimate");
    info.sigs = reader.readStrings("signatures");
    const ca = readOptionalContentAddress(reader);
    if (ca !== undefined) info.ca = ca;
  }
  return info;
}

export function writeUnkeyedValidPathInfo(
  writer: WireWriter,
  info: UnkeyedValidPathInfo,
  ctx: WireContext,
): void {
  writeOptionalString(writer, info.deriver);
  writer.writeString(info.narHash.toString("base16", false));
  writeStringSet(writer, info.references);
  writer.writeInt(info.registrationTime).writeInt(info.narSize);
  if (protocolMinor(ctx.version) >= 16) {
    writer.writeBool(info.ultimate);
    writeStringSet(writer, info.sigs);
    writeOptionalContentAddress(writer, info.ca);
  }
}

export function readValidPathInfo(reader: WireReader, ctx: WireContext): ValidPathInfo {
  return { path: readStorePath(reader, ctx), ...readUnkeyedValidPathInfo(reader, ctx) };
}

export function writeValidPathInfo(
  writer: WireWriter,
  info: ValidPathInfo,
  ctx: WireContext,
): void {
  writer.writeString(info.path);
  writeUnkeyedValidPathInfo(writer, info, ctx);
}

/** One entry of the serve protocol's QueryPathInfos reply (after its path). */
export interface ServePathInfo {
  deriver?: string;
  references: string[];
  downloadSize: number;
  narSize: number;
  /** sha256 of the NAR, sent as `sha256:<nix32>` (>= 2.4). */
  narHash?: Hash;
  /** (>= 2.4) */
  ca?: ContentAddress;
  /** (>= 2.4) */
  sigs: string[];
}

export function readServePathInfo(reader: WireReader, ctx: WireContext): ServePathInfo {
  const deriver = readOptionalStorePath(reader, ctx);
  const info: ServePathInfo = {
    references: readStorePaths(reader, ctx),
    downloadSize: reader.readInt("download size"),
    narSize: reader.readInt("NAR size"),
    sigs: [],
  };
  if (deriver !== undefined) info.deriver = deriver;
  if (protocolMinor(ctx.version) >= 4) {
    const start = reader.offset;
    const text = reader.readString("NAR hash");
    info.narHash = parseAt(start, () => parseHash(text, "sha256"));
    const ca = readOptionalContentAddress(reader);
    if (ca !== undefined) info.ca = ca;
    info.sigs = reader.readStrings("signatures");
  }
  return info;
}

export function writeServePathInfo(
  writer: WireWriter,
  info: ServePathInfo,
  ctx: WireContext,
): void {
  writeOptionalString(writer, info.deriver);
  writeStringSet(writer, info.references);
  writer.writeInt(info.downloadSize).writeInt(info.narSize);
  if (protocolMinor(ctx.version) >= 4) {
    if (info.narHash === undefined) {
      throw new InternalError("serve path info >= 2.4 needs its NAR hash");
    }
    writer.writeString(info.narHash.toNix32Prefixed());
    writeOptionalContentAddress(writer, info.ca);
    writeStringSet(writer, info.sigs);
  }
}

/** The QueryPathInfos reply: path then info for each, ended by "". */
export function readServePathInfos(
  reader: WireReader,
  ctx: WireContext,
): Map<string, ServePathInfo> {
  const infos = new Map<string, ServePathInfo>();
  while (true) {
    const path = readOptionalStorePath(reader, ctx);
    if (path === undefined) return infos;
    infos.set(path, readServePathInfo(reader, ctx));
  }
}

export function writeServePathInfos(
  writer: WireWriter,
  infos: ReadonlyMap<string, ServePathInfo>,
  ctx: WireContext,
): void {
  for (const [path, info] of infos) {
    writer.writeString(path);
    writeServePathInfo(writer, info, ctx);
  }
  writer.writeString("");
}
