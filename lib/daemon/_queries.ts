/** The operations that read the store, and the ones that only acknowledge (SetOptions, roots). */

import type { PathInfo } from "../store/mod.ts";
import {
  parseContentAddress,
  protocolMinor,
  readClientSettings,
  readStorePath,
  readStorePaths,
  type UnkeyedValidPathInfo,
  type WireWriter,
  WorkerOp,
  writeDerivationOutputMap,
  writeStringSet,
  writeUnkeyedValidPathInfo,
} from "../protocol/mod.ts";
import type { OpHandler, Session } from "./_session.ts";

function readPath(session: Session): Promise<string> {
  return session.incoming.read((r) => readStorePath(r, session.wire));
}

/** A path the operation needs valid; throws Nix's message when it is not. */
function requireValid(session: Session, path: string): void {
  if (!session.store.isValidPath(path)) throw new TypeError(`path '${path}' is not valid`);
}

/** The store's metadata as the wire carries it. */
export function wirePathInfo(info: PathInfo): UnkeyedValidPathInfo {
  const wire: UnkeyedValidPathInfo = {
    narHash: info.narHash,
    references: info.references,
    registrationTime: info.registrationTime,
    narSize: info.narSize,
    ultimate: info.ultimate,
    sigs: info.signatures,
  };
  if (info.deriver !== undefined) wire.deriver = info.deriver;
  if (info.ca !== undefined) wire.ca = parseContentAddress(info.ca);
  return wire;
}

const isValidPath: OpHandler = async (session) => {
  const path = await readPath(session);
  const valid = session.store.isValidPath(path);
  session.finish((w) => w.writeBool(valid));
};

const queryValidPaths: OpHandler = async (session) => {
  const paths = await session.incoming.read((r) => {
    const paths = readStorePaths(r, session.wire);
    // Whether to substitute what is missing: kiln's daemon does not substitute on queries.
    if (protocolMinor(session.wire.version) >= 27) r.readBool("substitute flag");
    return paths;
  });
  const valid = session.store.queryValidPaths(paths);
  session.finish((w) => writeStringSet(w, valid));
};

const queryPathInfo: OpHandler = async (session) => {
  const path = await readPath(session);
  const info = session.store.queryPathInfo(path);
  if (info === undefined && protocolMinor(session.wire.version) < 17) requireValid(session, path);
  session.finish((w) => {
    if (protocolMinor(session.wire.version) >= 17) w.writeBool(info !== undefined);
    if (info !== undefined) writeUnkeyedValidPathInfo(w, wirePathInfo(info), session.wire);
  });
};

/** An operation on one path that must be valid, whose reply `answer` makes. */
function onValidPath(
  answer: (session: Session, path: string) => (writer: WireWriter) => void,
): OpHandler {
  return async (session) => {
    const path = await readPath(session);
    requireValid(session, path);
    session.finish(answer(session, path));
  };
}

const queryReferrers = onValidPath((session, path) => {
  const referrers = session.store.queryReferrers(path);
  return (w) => writeStringSet(w, referrers);
});

const queryPathFromHashPart: OpHandler = async (session) => {
  const hashPart = await session.incoming.read((r) => r.readString("hash part"));
  const path = session.store.queryPathFromHashPart(hashPart);
  session.finish((w) => w.writeString(path ?? ""));
};

const queryDerivationOutputMap = onValidPath((session, path) => {
  const outputs = session.store.queryDerivationOutputs(path);
  return (w) => writeDerivationOutputMap(w, outputs);
});

/** The NAR follows LAST as it is, neither framed nor padded (`dumpPath(path, to)`). */
const narFromPath: OpHandler = async (session) => {
  const path = await readPath(session);
  requireValid(session, path);
  const nar = session.store.narFromPath(path);
  session.finish();
  for await (const chunk of nar) {
    session.out.send(chunk);
    await session.out.flush(); // no more of the NAR in memory than the socket takes
  }
};

const queryValidDerivers: OpHandler = async (session) => {
  const path = await readPath(session);
  const derivers = session.store.queryValidDerivers(path);
  session.finish((w) => writeStringSet(w, derivers));
};

/** The daemon substitutes nothing yet (as QueryMissing says): no path has a substitute. */
const hasSubstitutes: OpHandler = async (session) => {
  await readPath(session);
  session.finish((w) => w.writeBool(false));
};

const querySubstitutablePaths: OpHandler = async (session) => {
  await session.incoming.read((r) => readStorePaths(r, session.wire));
  session.finish((w) => writeStringSet(w, []));
};

/** Accepted and forgotten: kiln has no garbage collector yet, so no path needs protecting. */
const addTempRoot: OpHandler = async (session) => {
  await readPath(session);
  session.finish((w) => w.writeInt(1));
};

/** Valid paths only: the daemon does not substitute yet. */
const ensurePath = onValidPath(() => (w) => w.writeInt(1));

/**
 * A trusted client's settings all apply to its builds; an untrusted one's only those Nix 2.8's
 * daemon lets anyone set, and substituters only among the trusted ones: the rest are ignored
 * with Nix's warning.
 */
const setOptions: OpHandler = async (session) => {
  const settings = await session.incoming.read((r) => readClientSettings(r, session.wire.version));
  const overrides = session.trusted
    ? settings.overrides
    : restrictOverrides(session, settings.overrides);
  session.realise = session.options.realise(overrides);
  session.settings = { ...settings, overrides };
  session.finish();
};

/** The settings nix-daemon 2.8 takes from any client. */
const UNRESTRICTED = new Set([
  "timeout",
  "build-timeout",
  "repeat",
  "build-repeat",
  "connect-timeout",
]);

function restrictOverrides(
  session: Session,
  overrides: ReadonlyMap<string, string>,
): Map<string, string> {
  const kept = new Map<string, string>();
  const warn = (text: string) => session.out.stderr({ type: "next", text: `warning: ${text}\n` });
  for (const [name, value] of overrides) {
    if (name === "experimental-features" || name === "ssh-auth-sock") continue; // as Nix: unused
    if (UNRESTRICTED.has(name) || (name === "builders" && value === "")) {
      kept.set(name, value);
    } else if (name === "substituters" || name === "extra-substituters") {
      const trusted = session.options.trustedSubstituters;
      const subs = value.split(/\s+/).filter((s) => s !== "").filter((s) => {
        if (trusted.has(s)) return true;
        warn(`ignoring untrusted substituter '${s}'`);
        return false;
      });
      kept.set(name, subs.join(" "));
    } else {
      warn(
        `ignoring the client-specified setting '${name}', because it is a restricted setting and you are not a trusted user`,
      );
    }
  }
  return kept;
}

export const QUERY_HANDLERS: ReadonlyMap<number, OpHandler> = new Map([
  [WorkerOp.IsValidPath, isValidPath],
  [WorkerOp.QueryValidPaths, queryValidPaths],
  [WorkerOp.QueryPathInfo, queryPathInfo],
  [WorkerOp.QueryReferrers, queryReferrers],
  [WorkerOp.QueryPathFromHashPart, queryPathFromHashPart],
  [WorkerOp.QueryDerivationOutputMap, queryDerivationOutputMap],
  [WorkerOp.QueryValidDerivers, queryValidDerivers],
  [WorkerOp.HasSubstitutes, hasSubstitutes],
  [WorkerOp.QuerySubstitutablePaths, querySubstitutablePaths],
  [WorkerOp.NarFromPath, narFromPath],
  [WorkerOp.AddTempRoot, addTempRoot],
  [WorkerOp.EnsurePath, ensurePath],
  [WorkerOp.SetOptions, setOptions],
]);
