/** The settings a worker-protocol client sends with SetOptions (op 19), as Nix 2.8 lays them out. */

import { protocolMinor } from "./handshake.ts";
import { sortedEntries } from "./values.ts";
import type { WireReader, WireWriter } from "./wire.ts";

/** Verbosity Nix sends for `verboseBuild` (lvlError when set, lvlVomit when not). */
const LVL_ERROR = 0;
const LVL_VOMIT = 7;

export interface ClientSettings {
  keepFailed: boolean;
  keepGoing: boolean;
  tryFallback: boolean;
  /** Nix's verbosity level (0 error ... 7 vomit). */
  verbosity: number;
  maxBuildJobs: number;
  maxSilentTime: number;
  verboseBuild: boolean;
  buildCores: number;
  useSubstitutes: boolean;
  /** Other settings the client overrides, by name (>= 1.12); written sorted by name. */
  overrides: Map<string, string>;
}

export function readClientSettings(reader: WireReader, version: number): ClientSettings {
  const keepFailed = reader.readBool("keepFailed");
  const keepGoing = reader.readBool("keepGoing");
  const tryFallback = reader.readBool("tryFallback");
  const verbosity = reader.readInt("verbosity");
  const maxBuildJobs = reader.readInt("maxBuildJobs");
  const maxSilentTime = reader.readInt("maxSilentTime");
  reader.readInt("obsolete useBuildHook");
  const verboseBuild = reader.readInt("build verbosity") === LVL_ERROR;
  reader.readInt("obsolete logType");
  reader.readInt("obsolete printBuildTrace");
  const buildCores = reader.readInt("buildCores");
  const useSubstitutes = reader.readBool("useSubstitutes");
  const overrides = new Map<string, string>();
  if (protocolMinor(version) >= 12) {
    const count = reader.readCount("setting overrides");
    for (let i = 0; i < count; i++) {
      const name = reader.readString("setting name");
      overrides.set(name, reader.readString("setting value"));
    }
  }
  return {
    keepFailed,
    keepGoing,
    tryFallback,
    verbosity,
    maxBuildJobs,
    maxSilentTime,
    verboseBuild,
    buildCores,
    useSubstitutes,
    overrides,
  };
}

/** Writes the settings after the op number, with the obsolete fields as Nix 2.8 fills them. */
export function writeClientSettings(
  writer: WireWriter,
  settings: ClientSettings,
  version: number,
): void {
  writer.writeBool(settings.keepFailed).writeBool(settings.keepGoing)
    .writeBool(settings.tryFallback).writeInt(settings.verbosity)
    .writeInt(settings.maxBuildJobs).writeInt(settings.maxSilentTime).writeBool(true)
    .writeInt(settings.verboseBuild ? LVL_ERROR : LVL_VOMIT).writeInt(0).writeInt(0)
    .writeInt(settings.buildCores).writeBool(settings.useSubstitutes);
  if (protocolMinor(version) >= 12) {
    const overrides = sortedEntries(settings.overrides);
    writer.writeInt(overrides.length);
    for (const [name, value] of overrides) writer.writeString(name).writeString(value);
  }
}
