/**
 * Magic numbers, versions and the handshakes of the worker protocol (`worker-protocol.hh`) and
 * the serve protocol (`serve-protocol.hh`). A version is `major << 8 | minor`.
 */

import { type WireReader, WireWriter } from "./wire.ts";

/** Sent first by a worker-protocol client. */
export const WORKER_MAGIC_1 = 0x6e697863;
/** The worker-protocol server's answer. */
export const WORKER_MAGIC_2 = 0x6478696f;
/** Nix 2.8's worker protocol: 1.34. */
export const WORKER_PROTOCOL_VERSION = (1 << 8) | 34;
/** The oldest peer Nix 2.8 talks to, either side (1.10). */
export const WORKER_MIN_VERSION = (1 << 8) | 10;

/** Sent first by a serve-protocol client (`nix-store --serve`). */
export const SERVE_MAGIC_1 = 0x390c9deb;
/** The serve-protocol server's answer. */
export const SERVE_MAGIC_2 = 0x5452eecb;
/** Nix 2.8's serve protocol: 2.7. */
export const SERVE_PROTOCOL_VERSION = (2 << 8) | 7;

/** `GET_PROTOCOL_MAJOR`: the major part, still shifted (0x100 for 1.x), as Nix compares it. */
export function protocolMajor(version: number): number {
  return version & 0xff00;
}

/** `GET_PROTOCOL_MINOR`. */
export function protocolMinor(version: number): number {
  return version & 0x00ff;
}

/** `1.34` for 0x122. */
export function formatProtocolVersion(version: number): string {
  return `${protocolMajor(version) >> 8}.${protocolMinor(version)}`;
}

/**
 * The version both sides then speak: the lower of the two. Nix 2.8 has each side test the other's
 * version, which selects the same features. Throws a RangeError when the majors differ or the
 * result is older than `minimum`.
 */
export function negotiateVersion(
  ours: number,
  theirs: number,
  minimum = WORKER_MIN_VERSION,
): number {
  if (protocolMajor(ours) !== protocolMajor(theirs)) {
    throw new RangeError(
      `Protocol version ${formatProtocolVersion(theirs)} is not supported (major differs from ${
        formatProtocolVersion(ours)
      })`,
    );
  }
  const used = Math.min(ours, theirs);
  if (used < minimum) {
    throw new RangeError(
      `Protocol version ${formatProtocolVersion(used)} is too old (need ${
        formatProtocolVersion(minimum)
      })`,
    );
  }
  return used;
}

/** A server's greeting: its magic, then its version. */
export interface Hello {
  magic: number;
  version: number;
}

/** Encodes a greeting (magic then version), as either side sends it. */
export function encodeHello(hello: Hello): Uint8Array<ArrayBuffer> {
  return new WireWriter().writeInt(hello.magic).writeInt(hello.version).finish();
}

/** Reads a greeting and checks its magic. */
export function readHello(reader: WireReader, magic: number): Hello {
  const got = reader.readInt("protocol magic");
  if (got !== magic) {
    throw reader.error(
      `Protocol mismatch: magic 0x${got.toString(16)}, expected 0x${magic.toString(16)}`,
    );
  }
  return { magic, version: reader.readInt("protocol version") };
}

/** What a worker-protocol client sends after its version: obsolete fields Nix still sends. */
export interface ClientObsoleteFields {
  /** CPU affinity (>= 1.14; Nix sends none). */
  cpuAffinity?: number;
  /** reserveSpace (>= 1.11). */
  reserveSpace: boolean;
}

export function writeClientObsoleteFields(
  writer: WireWriter,
  fields: ClientObsoleteFields,
  version: number,
): void {
  if (protocolMinor(version) >= 14) {
    if (fields.cpuAffinity === undefined) writer.writeInt(0);
    else writer.writeInt(1).writeInt(fields.cpuAffinity);
  }
  if (protocolMinor(version) >= 11) writer.writeBool(fields.reserveSpace);
}

export function readClientObsoleteFields(
  reader: WireReader,
  version: number,
): ClientObsoleteFields {
  let cpuAffinity: number | undefined;
  if (protocolMinor(version) >= 14 && reader.readBool("CPU affinity flag")) {
    cpuAffinity = reader.readInt("CPU affinity");
  }
  const reserveSpace = protocolMinor(version) >= 11 && reader.readBool("reserveSpace");
  return cpuAffinity === undefined ? { reserveSpace } : { cpuAffinity, reserveSpace };
}

/** What the server tells the client after the versions (`ClientHandshakeInfo`). */
export interface ClientHandshakeInfo {
  /** The daemon's Nix version string (>= 1.33). */
  daemonNixVersion?: string;
  /** Whether the daemon trusts the client, if it says (>= 1.35). */
  remoteTrustsUs?: boolean;
}

export function writeClientHandshakeInfo(
  writer: WireWriter,
  info: ClientHandshakeInfo,
  version: number,
): void {
  if (protocolMinor(version) >= 33) writer.writeString(info.daemonNixVersion ?? "");
  if (protocolMinor(version) >= 35) writeOptionalTrustedFlag(writer, info.remoteTrustsUs);
}

export function readClientHandshakeInfo(reader: WireReader, version: number): ClientHandshakeInfo {
  const info: ClientHandshakeInfo = {};
  if (protocolMinor(version) >= 33) info.daemonNixVersion = reader.readString("Nix version");
  if (protocolMinor(version) >= 35) {
    const trusted = readOptionalTrustedFlag(reader);
    if (trusted !== undefined) info.remoteTrustsUs = trusted;
  }
  return info;
}

/** `std::optional<TrustedFlag>`: 0 unknown, 1 trusted, 2 not trusted. */
export function writeOptionalTrustedFlag(writer: WireWriter, trusted: boolean | undefined): void {
  writer.writeInt(trusted === undefined ? 0 : trusted ? 1 : 2);
}

export function readOptionalTrustedFlag(reader: WireReader): boolean | undefined {
  const tag = reader.readInt("trusted flag");
  if (tag > 2) throw reader.error(`Invalid trusted flag ${tag}`);
  return tag === 0 ? undefined : tag === 1;
}
