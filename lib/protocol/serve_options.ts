/** The build settings the serve protocol sends with BuildPaths and BuildDerivation. */

import { protocolMinor } from "./handshake.ts";
import type { WireReader, WireWriter } from "./wire.ts";

/** `ServeProto::BuildOptions`; fields a version does not carry read as 0 / false. */
export interface ServeBuildOptions {
  /** max-silent-time, seconds. */
  maxSilentTime: number;
  /** timeout, seconds. */
  buildTimeout: number;
  /** max-build-log-size, bytes (>= 2.2). */
  maxLogSize: number;
  /** repeat (>= 2.3). */
  nrRepeats: number;
  /** enforce-determinism (>= 2.3). */
  enforceDeterminism: boolean;
  /** keep-failed (>= 2.7). */
  keepFailed: boolean;
}

/** Nix's defaults: no limits, one build, nothing kept. */
export const DEFAULT_SERVE_BUILD_OPTIONS: Readonly<ServeBuildOptions> = {
  maxSilentTime: 0,
  buildTimeout: 0,
  maxLogSize: 0,
  nrRepeats: 0,
  enforceDeterminism: false,
  keepFailed: false,
};

export function readServeBuildOptions(reader: WireReader, version: number): ServeBuildOptions {
  const minor = protocolMinor(version);
  const options: ServeBuildOptions = {
    ...DEFAULT_SERVE_BUILD_OPTIONS,
    maxSilentTime: reader.readInt("max silent time"),
    buildTimeout: reader.readInt("build timeout"),
  };
  if (minor >= 2) options.maxLogSize = reader.readInt("max log size");
  if (minor >= 3) {
    options.nrRepeats = reader.readInt("repeat count");
    options.enforceDeterminism = reader.readBool("enforce determinism");
  }
  if (minor >= 7) options.keepFailed = reader.readBool("keep failed");
  return options;
}

export function writeServeBuildOptions(
  writer: WireWriter,
  options: ServeBuildOptions,
  version: number,
): void {
  const minor = protocolMinor(version);
  writer.writeInt(options.maxSilentTime).writeInt(options.buildTimeout);
  if (minor >= 2) writer.writeInt(options.maxLogSize);
  if (minor >= 3) writer.writeInt(options.nrRepeats).writeBool(options.enforceDeterminism);
  if (minor >= 7) writer.writeBool(options.keepFailed);
}
