/**
 * The stderr channel: what a worker-protocol server sends while an operation runs, before its
 * reply (`STDERR_*` in `worker-protocol.hh`, `TunnelLogger` in `daemon.cc`).
 */

import { protocolMinor } from "./handshake.ts";
import { WireFormatError, type WireReader, type WireWriter } from "./wire.ts";
import { InternalError } from "../sys/mod.ts";

export const STDERR_NEXT = 0x6f6c6d67;
export const STDERR_READ = 0x64617461;
export const STDERR_WRITE = 0x64617416;
export const STDERR_LAST = 0x616c7473;
export const STDERR_ERROR = 0x63787470;
export const STDERR_START_ACTIVITY = 0x53545254;
export const STDERR_STOP_ACTIVITY = 0x53544f50;
export const STDERR_RESULT = 0x52534c54;

/** An activity or result field: integers are type 0, strings type 1 on the wire. */
export type LogField = number | string;

/** An error as the server reports it. */
export interface RemoteError {
  /** Verbosity level (>= 1.26; 0 before). */
  level: number;
  /** Always "Error" from Nix (a removed field it still sends; >= 1.26). */
  name: string;
  message: string;
  /** Trace hints, outermost last (>= 1.26). */
  traces: string[];
  /** Exit status the client should use (before 1.26 only; 1 after). */
  exitStatus: number;
}

export type StderrMessage =
  | { type: "next"; text: string }
  | { type: "read"; length: number }
  | { type: "write"; data: Uint8Array }
  | { type: "last" }
  | { type: "error"; error: RemoteError }
  | {
    type: "startActivity";
    id: number;
    level: number;
    activityType: number;
    text: string;
    fields: LogField[];
    parent: number;
  }
  | { type: "stopActivity"; id: number }
  | { type: "result"; id: number; resultType: number; fields: LogField[] };

/** Appends one stderr message as a server speaking `version` sends it. */
export function writeStderrMessage(
  writer: WireWriter,
  message: StderrMessage,
  version: number,
): void {
  switch (message.type) {
    case "next":
      writer.writeInt(STDERR_NEXT).writeString(message.text);
      return;
    case "read":
      writer.writeInt(STDERR_READ).writeInt(message.length);
      return;
    case "write":
      writer.writeInt(STDERR_WRITE).writeBytes(message.data);
      return;
    case "last":
      writer.writeInt(STDERR_LAST);
      return;
    case "error":
      writer.writeInt(STDERR_ERROR);
      writeRemoteError(writer, message.error, version);
      return;
    case "startActivity":
      writer.writeInt(STDERR_START_ACTIVITY).writeInt(message.id).writeInt(message.level)
        .writeInt(message.activityType).writeString(message.text);
      writeFields(writer, message.fields);
      writer.writeInt(message.parent);
      return;
    case "stopActivity":
      writer.writeInt(STDERR_STOP_ACTIVITY).writeInt(message.id);
      return;
    case "result":
      writer.writeInt(STDERR_RESULT).writeInt(message.id).writeInt(message.resultType);
      writeFields(writer, message.fields);
      return;
    default: {
      const unknown: never = message;
      throw new InternalError(`stderr message ${JSON.stringify(unknown)}`);
    }
  }
}

/** Reads one stderr message as a client of a server speaking `version` receives it. */
export function readStderrMessage(reader: WireReader, version: number): StderrMessage {
  const start = reader.offset;
  const code = reader.readInt("stderr message type");
  switch (code) {
    case STDERR_NEXT:
      return { type: "next", text: reader.readString("log line") };
    case STDERR_READ:
      return { type: "read", length: reader.readInt("read length") };
    case STDERR_WRITE:
      return { type: "write", data: reader.readBytes("written data") };
    case STDERR_LAST:
      return { type: "last" };
    case STDERR_ERROR:
      return { type: "error", error: readRemoteError(reader, version) };
    case STDERR_START_ACTIVITY: {
      const id = reader.readInt("activity id");
      const level = reader.readInt("activity level");
      const activityType = reader.readInt("activity type");
      const text = reader.readString("activity text");
      const fields = readFields(reader);
      const parent = reader.readInt("parent activity");
      return { type: "startActivity", id, level, activityType, text, fields, parent };
    }
    case STDERR_STOP_ACTIVITY:
      return { type: "stopActivity", id: reader.readInt("activity id") };
    case STDERR_RESULT: {
      const id = reader.readInt("activity id");
      const resultType = reader.readInt("result type");
      return { type: "result", id, resultType, fields: readFields(reader) };
    }
    default:
      throw new WireFormatError(`Unknown stderr message type 0x${code.toString(16)}`, start);
  }
}

function writeFields(writer: WireWriter, fields: readonly LogField[]): void {
  writer.writeList(fields, (w, field) => {
    if (typeof field === "number") w.writeInt(0).writeInt(field);
    else w.writeInt(1).writeString(field);
  });
}

function readFields(reader: WireReader): LogField[] {
  return reader.readList((r): LogField => {
    const type = r.readInt("field type");
    if (type === 0) return r.readInt("field");
    if (type === 1) return r.readString("field");
    throw r.error(`Unknown field type ${type}`);
  }, "fields");
}

function writeRemoteError(writer: WireWriter, error: RemoteError, version: number): void {
  if (protocolMinor(version) < 26) {
    writer.writeString(error.message).writeInt(error.exitStatus);
    return;
  }
  writer.writeString("Error").writeInt(error.level).writeString(error.name)
    .writeString(error.message).writeInt(0);
  writer.writeList(error.traces, (w, hint) => w.writeInt(0).writeString(hint));
}

function readRemoteError(reader: WireReader, version: number): RemoteError {
  if (protocolMinor(version) < 26) {
    const message = reader.readString("error message");
    const exitStatus = reader.readInt("exit status");
    return { level: 0, name: "Error", message, traces: [], exitStatus };
  }
  const kind = reader.readString("error type");
  if (kind !== "Error") throw reader.error(`Unknown error type '${kind}'`);
  const level = reader.readInt("error level");
  const name = reader.readString("error name");
  const message = reader.readString("error message");
  expectNoPosition(reader);
  const traces = reader.readList((r) => {
    expectNoPosition(r);
    return r.readString("trace");
  }, "traces");
  return { level, name, message, traces, exitStatus: 1 };
}

/** Nix sends no positions (always 0) and refuses any other value. */
function expectNoPosition(reader: WireReader): void {
  const hasPos = reader.readInt("error position flag");
  if (hasPos !== 0) throw reader.error(`Unexpected error position flag ${hasPos}`);
}

/** Reads stderr messages up to and including the LAST or ERROR that ends an operation's run. */
export function readStderrMessages(reader: WireReader, version: number): StderrMessage[] {
  const messages: StderrMessage[] = [];
  while (true) {
    const message = readStderrMessage(reader, version);
    messages.push(message);
    if (message.type === "last" || message.type === "error") return messages;
  }
}
