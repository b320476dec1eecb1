/** The operations that add paths: AddTextToStore, AddToStore (1.25's layout), AddToStoreNar. */

import { checkOutputPaths, parseDerivation } from "../derivation/mod.ts";
import { decodeNixString, type HashAlgorithm } from "../hashing/mod.ts";
import { readDerivation } from "../scheduler/mod.ts";
import { type PathInfo, removeTree, restoreNar } from "../store/mod.ts";
import {
  parseAt,
  parseContentAddressMethod,
  printContentAddress,
  protocolMinor,
  readAddTextToStoreRequest,
  readAddToStoreNarRequest,
  readAddToStoreRequest,
  WorkerOp,
  writeValidPathInfo,
} from "../protocol/mod.ts";
import {
  fingerprintPath,
  type NarInfo,
  provesItself,
  verifySignatures,
} from "../substituter/mod.ts";
import type { FramedData } from "./_channel.ts";
import { wirePathInfo } from "./_queries.ts";
import { type OpHandler, type Session, SessionError } from "./_session.ts";

/** Adds a text file; a `.drv` has its outputs checked and recorded, as Nix's daemon does. */
async function addText(
  session: Session,
  name: string,
  contents: Uint8Array,
  references: string[],
): Promise<string> {
  const { store } = session;
  if (!name.endsWith(".drv")) return await store.addTextToStore(name, contents, references);
  const drv = parseDerivation(decodeNixString(contents), name.slice(0, -".drv".length));
  const outputs = checkOutputPaths(store.storeDir, drv, (p) => readDerivation(store, p));
  return await store.addTextToStore(name, contents, references, { derivationOutputs: outputs });
}

async function collect(data: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(ReadableStream.from(data)).arrayBuffer());
}

const addTextToStore: OpHandler = async (session) => {
  const { name, text, references } = await session.incoming.read((r) =>
    readAddTextToStoreRequest(r, session.wire)
  );
  const path = await addText(session, name, text, references);
  session.finish((w) => w.writeString(path));
};

/** Adds a NAR (method `nar`) or a file's contents (`flat`) as a content-addressed path. */
async function addFixed(
  session: Session,
  data: FramedData,
  options: { name: string; method: "nar" | "flat"; algorithm: HashAlgorithm },
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "kiln-daemon-add-" });
  try {
    const src = `${dir}/${options.name}`;
    if (options.method === "nar") await restoreNar(data, src);
    else await Deno.writeFile(src, ReadableStream.from(data));
    return (await session.store.addPath(src, options)).path;
  } finally {
    removeTree(dir);
  }
}

const addToStore: OpHandler = async (session) => {
  // A bad method makes the request malformed: the connection is closed, its data left unread.
  const { request, method, algorithm } = await session.incoming.read((r) => {
    const start = r.offset;
    const request = readAddToStoreRequest(r, session.wire);
    return { request, ...parseAt(start, () => parseContentAddressMethod(request.method)) };
  });
  const data = session.incoming.framed();
  let path: string;
  try {
    if (method === "text") {
      path = await addText(session, request.name, await collect(data), request.references);
    } else {
      if (request.references.length > 0) {
        throw new TypeError(`Adding '${request.name}' with references is not supported yet`);
      }
      path = await addFixed(session, data, { name: request.name, method, algorithm });
    }
  } finally {
    await data.drain();
  }
  const info = session.store.queryPathInfo(path)!;
  session.finish((w) => writeValidPathInfo(w, { path, ...wirePathInfo(info) }, session.wire));
};

/**
 * Adds a path from its NAR. From an untrusted client, as in Nix, the path must carry a signature
 * by a key in `trusted-public-keys` unless its CA field proves it (the client's dontCheckSigs is
 * ignored), and it may not repair.
 */
const addToStoreNar: OpHandler = async (session) => {
  if (protocolMinor(session.wire.version) < 23) {
    throw new SessionError("AddToStoreNar before protocol 1.23 is not supported by kiln's daemon");
  }
  const { info: wire, repair } = await session.incoming.read((r) =>
    readAddToStoreNarRequest(r, session.wire)
  );
  const info: PathInfo = {
    path: wire.path,
    narHash: wire.narHash,
    narSize: wire.narSize,
    references: [...wire.references].sort(),
    registrationTime: wire.registrationTime || Math.floor(Date.now() / 1000),
    signatures: wire.sigs,
    ultimate: wire.ultimate,
  };
  if (wire.deriver !== undefined) info.deriver = wire.deriver;
  if (wire.ca !== undefined) info.ca = printContentAddress(wire.ca);
  if (!session.trusted) {
    const refused = repair
      ? "repairing is not allowed because you are not in 'trusted-users'"
      : session.options.requireSigs && !signedOrProven(session, info)
      ? `cannot add path '${info.path}' because it lacks a signature by a trusted key`
      : undefined;
    if (refused !== undefined) {
      await session.incoming.framed().drain();
      throw new Error(refused);
    }
  }
  const data = session.incoming.framed();
  try {
    await session.store.addToStore(info, data);
  } finally {
    await data.drain();
  }
  session.finish();
};

/** Whether `info` proves itself by its CA field or is signed by a key the daemon trusts. */
function signedOrProven(session: Session, info: PathInfo): boolean {
  const narInfo: NarInfo = {
    storePath: info.path,
    url: "",
    compression: "none",
    narHash: info.narHash,
    narSize: info.narSize,
    references: info.references,
    sigs: info.signatures,
  };
  if (info.ca !== undefined) narInfo.ca = info.ca;
  return provesItself(session.store.storeDir, narInfo) ||
    verifySignatures(
      fingerprintPath(info.path, narInfo),
      info.signatures,
      session.options.trustedKeys,
    );
}

export const ADD_HANDLERS: ReadonlyMap<number, OpHandler> = new Map([
  [WorkerOp.AddTextToStore, addTextToStore],
  [WorkerOp.AddToStore, addToStore],
  [WorkerOp.AddToStoreNar, addToStoreNar],
]);
