/**
 * One worker-protocol connection, as Nix 2.8's `daemon.cc` serves it: the handshake, then one
 * operation after another, each with its stderr messages ended by LAST (then its reply) or by
 * ERROR. An operation kiln does not serve gets an ERROR and the connection is closed, as is one
 * whose request is malformed; any other failure is reported and the next operation read.
 */

import type { RealiseOptions } from "../scheduler/mod.ts";
import type { LocalStore } from "../store/mod.ts";
import type { PublicKey } from "../substituter/mod.ts";
import {
  type ClientSettings,
  encodeHello,
  formatProtocolVersion,
  negotiateVersion,
  readClientObsoleteFields,
  type RemoteError,
  type WireContext,
  WireFormatError,
  type WireWriter,
  WORKER_MAGIC_1,
  WORKER_MAGIC_2,
  WORKER_PROTOCOL_VERSION,
  workerOpName,
  writeClientHandshakeInfo,
} from "../protocol/mod.ts";
import { Incoming, Outgoing } from "./_channel.ts";

/** The oldest client kiln serves: 1.21 (Nix 2.0). */
export const DAEMON_MIN_VERSION = (1 << 8) | 21;

/** What a build run of a client takes from the daemon: all but what each request says. */
export type RealiseBase = Omit<
  RealiseOptions,
  "onEvent" | "signal" | "check" | "repair" | "estimate"
>;

/** What every connection of a daemon shares. */
export interface DaemonOptions {
  store: LocalStore;
  /**
   * How a client's builds run, given the settings it overrides (SetOptions' map; empty before
   * SetOptions); throws a TypeError naming a bad value. SetOptions' own fields apply on top.
   */
  realise(overrides: ReadonlyMap<string, string>): RealiseBase;
  /** The version string a client is told (>= 1.33). */
  daemonVersion: string;
  /** `trusted-public-keys`: what an untrusted client's input-addressed paths are signed by. */
  trustedKeys: readonly PublicKey[];
  /** `require-sigs`: whether an untrusted client's input-addressed paths need a signature. */
  requireSigs: boolean;
  /** The substituters an untrusted client may ask for: `trusted-substituters` and the daemon's. */
  trustedSubstituters: ReadonlySet<string>;
  /** Aborting it cancels the connection's builds (daemon shutdown). */
  signal?: AbortSignal;
}

/** What an operation works with. */
export interface Session {
  readonly options: DaemonOptions;
  readonly store: LocalStore;
  readonly incoming: Incoming;
  readonly out: Outgoing;
  readonly wire: WireContext;
  /** Whether the client is a trusted user (it may set any setting, add unsigned paths, repair). */
  readonly trusted: boolean;
  /** The client's settings, once it has sent SetOptions. */
  settings?: ClientSettings;
  /** How its builds run, with the settings it overrides, once it has sent SetOptions. */
  realise?: RealiseBase;
  /** Ends the operation's stderr messages with LAST, then sends its reply, if it has one. */
  finish(reply?: (writer: WireWriter) => void): void;
}

/** Serves one operation: reads its request, does it, then calls `finish`. */
export type OpHandler = (session: Session) => Promise<void>;

/** A byte stream each way, and whether the client at the other end is trusted. */
export interface Connection {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  trusted: boolean;
}

/** Why a connection ended early (the handshake failed, an op is unknown or malformed). */
export class SessionError extends Error {
  override name = "SessionError";
}

/**
 * Serves `connection` until the client hangs up; resolves when it is closed. Rejects with what
 * ended it early (a bad handshake, an unknown operation, a malformed request, a broken pipe).
 */
export async function serveConnection(
  connection: Connection,
  options: DaemonOptions,
  handlers: ReadonlyMap<number, OpHandler>,
): Promise<void> {
  let version = WORKER_PROTOCOL_VERSION;
  const incoming = new Incoming(connection.readable);
  const out = new Outgoing(connection.writable, () => version);
  try {
    const magic = await incoming.read((r) => r.readInt("protocol magic"));
    if (magic !== WORKER_MAGIC_1) {
      throw new SessionError(`Protocol mismatch: magic 0x${magic.toString(16)} is not Nix's`);
    }
    out.send(encodeHello({ magic: WORKER_MAGIC_2, version: WORKER_PROTOCOL_VERSION }));
    const theirs = await incoming.read((r) => r.readInt("client version"));
    version = negotiateVersion(WORKER_PROTOCOL_VERSION, theirs, DAEMON_MIN_VERSION);
    await incoming.read((r) => readClientObsoleteFields(r, version));
    out.reply((w) =>
      writeClientHandshakeInfo(w, {
        daemonNixVersion: options.daemonVersion,
        remoteTrustsUs: connection.trusted, // sent from 1.35 on
      }, version)
    );
    out.stderr({ type: "last" });
    await out.flush();
    await serveOps(incoming, out, { options, version, handlers, trusted: connection.trusted });
  } finally {
    await incoming.close();
    await out.close();
  }
}

async function serveOps(
  incoming: Incoming,
  out: Outgoing,
  { options, version, handlers, trusted }: {
    options: DaemonOptions;
    version: number;
    handlers: ReadonlyMap<number, OpHandler>;
    trusted: boolean;
  },
): Promise<void> {
  let finished = false;
  const session: Session = {
    options,
    store: options.store,
    incoming,
    out,
    wire: { storeDir: options.store.storeDir, version },
    trusted,
    finish(reply) {
      finished = true;
      out.stderr({ type: "last" });
      if (reply !== undefined) out.reply(reply);
    },
  };
  while (!(await incoming.atEnd())) {
    const op = await incoming.read((r) => r.readInt("operation"));
    const handler = handlers.get(op);
    if (handler === undefined) {
      const name = workerOpName(op);
      const message = name === undefined
        ? `Unknown worker operation ${op}`
        : `Operation ${name} (${op}) is not supported by kiln's daemon (protocol ${
          formatProtocolVersion(version)
        })`;
      out.stderr({ type: "error", error: remoteError(message) });
      await out.flush();
      throw new SessionError(message);
    }
    finished = false;
    try {
      await handler(session);
    } catch (e) {
      // After LAST the client reads a reply, not an error: nothing more can be said in step.
      if (finished) throw e;
      out.stderr({ type: "error", error: remoteError(describe(e)) });
      if (e instanceof WireFormatError || e instanceof SessionError) {
        await out.flush();
        throw e;
      }
    }
    await out.flush();
  }
}

/** An error for the client: Nix 2.8 shows the message as `error: <message>`, exit status 1. */
function remoteError(message: string): RemoteError {
  return { level: 0, name: "Error", message, traces: [], exitStatus: 1 };
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
