/**
 * `BuildResult` on the wire, by protocol version: the worker protocol's (BuildDerivation,
 * BuildPathsWithResults keyed by the derived path) and the serve protocol's (BuildDerivation).
 */

import { protocolMinor } from "./handshake.ts";
import {
  type DerivedPath,
  readDerivedPath,
  readDrvOutputs,
  type Realisation,
  type WireContext,
  writeDerivedPath,
  writeDrvOutputs,
} from "./values.ts";
import type { WireReader, WireWriter } from "./wire.ts";

/** `BuildResult::Status`, by wire number. */
export const BUILD_STATUSES = [
  "Built",
  "Substituted",
  "AlreadyValid",
  "PermanentFailure",
  "InputRejected",
  "OutputRejected",
  "TransientFailure",
  "CachedFailure",
  "TimedOut",
  "MiscFailure",
  "DependencyFailed",
  "LogLimitExceeded",
  "NotDeterministic",
  "ResolvesToAlreadyValid",
  "NoSubstituters",
] as const;
export type BuildStatus = typeof BUILD_STATUSES[number];

/** The outcome of building or substituting one derivation or path, as the wire carries it. */
export interface BuildResult {
  status: BuildStatus;
  /** "" on success. */
  errorMsg: string;
  /** (worker >= 1.29, serve >= 2.3; 0 before) */
  timesBuilt: number;
  isNonDeterministic: boolean;
  /** Seconds since the epoch (0 when unknown). */
  startTime: number;
  stopTime: number;
  /** DrvOutput id → realisation (worker >= 1.28, serve >= 2.6). */
  builtOutputs: Record<string, Realisation>;
  /** CPU time of the builder in microseconds, if measured (worker >= 1.37). */
  cpuUser?: number;
  cpuSystem?: number;
}

/** A worker BuildPathsWithResults entry: the path asked for and its result. */
export interface KeyedBuildResult extends BuildResult {
  path: DerivedPath;
}

function readStatus(reader: WireReader): BuildStatus {
  const n = reader.readInt("build status");
  const status = BUILD_STATUSES[n];
  if (status === undefined) throw reader.error(`Unknown build status ${n}`);
  return status;
}

function readTimes(reader: WireReader, result: BuildResult): void {
  result.timesBuilt = reader.readInt("times built");
  result.isNonDeterministic = reader.readBool("non-determinism flag");
  result.startTime = reader.readInt("start time");
  result.stopTime = reader.readInt("stop time");
}

function writeTimes(writer: WireWriter, result: BuildResult): void {
  writer.writeInt(result.timesBuilt).writeBool(result.isNonDeterministic)
    .writeInt(result.startTime).writeInt(result.stopTime);
}

function readBase(reader: WireReader): BuildResult {
  const status = readStatus(reader);
  return {
    status,
    errorMsg: reader.readString("error message"),
    timesBuilt: 0,
    isNonDeterministic: false,
    startTime: 0,
    stopTime: 0,
    builtOutputs: {},
  };
}

function readCpuTime(reader: WireReader): number | undefined {
  const tag = reader.readInt("CPU time flag");
  if (tag > 1) throw reader.error(`Invalid CPU time flag ${tag}`);
  return tag === 1 ? reader.readInt("CPU time") : undefined;
}

function writeCpuTime(writer: WireWriter, micros: number | undefined): void {
  if (micros === undefined) writer.writeInt(0);
  else writer.writeInt(1).writeInt(micros);
}

/** The worker protocol's BuildResult at `ctx.version`. */
export function readBuildResult(reader: WireReader, ctx: WireContext): BuildResult {
  const result = readBase(reader);
  const minor = protocolMinor(ctx.version);
  if (minor >= 29) readTimes(reader, result);
  if (minor >= 37) {
    const cpuUser = readCpuTime(reader);
    const cpuSystem = readCpuTime(reader);
    if (cpuUser !== undefined) result.cpuUser = cpuUser;
    if (cpuSystem !== undefined) result.cpuSystem = cpuSystem;
  }
  if (minor >= 28) result.builtOutputs = readDrvOutputs(reader, ctx);
  return result;
}

export function writeBuildResult(writer: WireWriter, result: BuildResult, ctx: WireContext): void {
  writer.writeInt(BUILD_STATUSES.indexOf(result.status)).writeString(result.errorMsg);
  const minor = protocolMinor(ctx.version);
  if (minor >= 29) writeTimes(writer, result);
  if (minor >= 37) {
    writeCpuTime(writer, result.cpuUser);
    writeCpuTime(writer, result.cpuSystem);
  }
  if (minor >= 28) writeDrvOutputs(writer, result.builtOutputs, ctx);
}

/** A BuildPathsWithResults entry: derived path, then the BuildResult at `ctx.version`. */
export function readKeyedBuildResult(reader: WireReader, ctx: WireContext): KeyedBuildResult {
  const path = readDerivedPath(reader, ctx);
  return { path, ...readBuildResult(reader, ctx) };
}

export function writeKeyedBuildResult(
  writer: WireWriter,
  result: KeyedBuildResult,
  ctx: WireContext,
): void {
  writeDerivedPath(writer, result.path, ctx);
  writeBuildResult(writer, result, ctx);
}

/**
 * The serve protocol's BuildResult at `ctx.version`. Nix 2.8's `nix-store --serve` sends
 * builtOutputs to every client (a misplaced parenthesis); this codec follows the version.
 */
export function readServeBuildResult(reader: WireReader, ctx: WireContext): BuildResult {
  const result = readBase(reader);
  const minor = protocolMinor(ctx.version);
  if (minor >= 3) readTimes(reader, result);
  if (minor >= 6) result.builtOutputs = readDrvOutputs(reader, ctx);
  return result;
}

export function writeServeBuildResult(
  writer: WireWriter,
  result: BuildResult,
  ctx: WireContext,
): void {
  writer.writeInt(BUILD_STATUSES.indexOf(result.status)).writeString(result.errorMsg);
  const minor = protocolMinor(ctx.version);
  if (minor >= 3) writeTimes(writer, result);
  if (minor >= 6) writeDrvOutputs(writer, result.builtOutputs, ctx);
}
