/**
 * Nix 2.8's `nix-daemon --stdio` as the oracle of the worker protocol: a handshake at 1.34,
 * QueryPathInfo and BuildPathsWithResults encoded by lib/protocol, and the daemon's replies
 * (stderr channel included) decoded by it and re-encoded to the same bytes.
 */

import { assert, assertEquals } from "../_assert.ts";
import {
  type ClientSettings,
  type DerivedPath,
  encodeFramed,
  encodeHello,
  readClientHandshakeInfo,
  readHello,
  readKeyedBuildResult,
  readStderrMessages,
  readUnkeyedValidPathInfo,
  type StderrMessage,
  type UnkeyedValidPathInfo,
  type WireReader,
  WireWriter,
  WORKER_MAGIC_1,
  WORKER_MAGIC_2,
  WORKER_PROTOCOL_VERSION,
  WorkerOp,
  writeBuildMode,
  writeClientHandshakeInfo,
  writeClientObsoleteFields,
  writeClientSettings,
  writeDerivedPath,
  writeKeyedBuildResult,
  writeStderrMessage,
  writeUnkeyedValidPathInfo,
  writeValidPathInfo,
} from "../../lib/protocol/mod.ts";
import { hashBytes } from "../../lib/hashing/mod.ts";
import { assertPathInfoOf, converse, instantiate, nixOracleTest } from "./_oracle.ts";

const SETTINGS: ClientSettings = {
  keepFailed: false,
  keepGoing: false,
  tryFallback: false,
  verbosity: 7,
  maxBuildJobs: 1,
  maxSilentTime: 0,
  verboseBuild: true,
  buildCores: 1,
  useSubstitutes: false,
  overrides: new Map([["max-build-log-size", "0"]]),
};

nixOracleTest(
  "worker protocol codecs speak with Nix 2.8's nix-daemon --stdio: path infos and a build",
  async (nix) => {
    const { drvPath, dep, outPath } = await instantiate(nix, {
      name: "w",
      script: "echo built >&2",
    });
    const version = WORKER_PROTOCOL_VERSION;
    const ctx = { storeDir: nix.storeDir, version };
    const wanted: DerivedPath = { type: "built", drvPath, outputs: ["out"] };

    const request = new WireWriter().writeInt(WORKER_MAGIC_1).writeInt(version);
    writeClientObsoleteFields(request, { reserveSpace: false }, version);
    request.writeInt(WorkerOp.SetOptions);
    writeClientSettings(request, SETTINGS, version);
    request.writeInt(WorkerOp.QueryPathInfo).writeString(dep);
    request.writeInt(WorkerOp.BuildPathsWithResults);
    request.writeList([wanted], (w, path) => writeDerivedPath(w, path, ctx));
    writeBuildMode(request, "normal");
    request.writeInt(WorkerOp.QueryPathInfo).writeString(outPath);

    const queryPathInfo = (reader: WireReader) => {
      const log = readStderrMessages(reader, version);
      const valid = reader.readBool("valid");
      return { log, valid, info: readUnkeyedValidPathInfo(reader, ctx) };
    };
    const { bytes, replies } = await converse(nix, {
      command: ["nix-daemon", "--stdio"],
      request: request.finish(),
      parse: (reader) => {
        const hello = readHello(reader, WORKER_MAGIC_2);
        const handshake = readClientHandshakeInfo(reader, version);
        const greeting = readStderrMessages(reader, version);
        const setOptions = readStderrMessages(reader, version);
        const depInfo = queryPathInfo(reader);
        const buildLog = readStderrMessages(reader, version);
        const results = reader.readList((r) => readKeyedBuildResult(r, ctx));
        const outInfo = queryPathInfo(reader);
        return { hello, handshake, greeting, setOptions, depInfo, buildLog, results, outInfo };
      },
    });

    assertEquals(replies.hello.version, version);
    assert(
      replies.handshake.daemonNixVersion?.startsWith("2.8"),
      replies.handshake.daemonNixVersion,
    );
    assertEquals(replies.greeting, [{ type: "last" }]);
    assertEquals(replies.setOptions, [{ type: "last" }]);
    // Debug lines reach the client only because SetOptions' verbosity (7) was read as such.
    const debug = replies.buildLog.filter((m) =>
      m.type === "next" && m.text === "entered goal loop\n"
    );
    assertEquals(debug.length, 1);
    for (
      const [path, { valid, info }] of [[dep, replies.depInfo], [
        outPath,
        replies.outInfo,
      ]] as const
    ) {
      assert(valid, path);
      await assertPathInfoOf(nix, path, info);
    }
    assertEquals(replies.outInfo.info.deriver, drvPath);
    assertEquals(replies.outInfo.info.ultimate, true);
    const [result] = replies.results;
    assertEquals([replies.results.length, result.status, result.path], [1, "Built", wanted]);
    assertEquals(Object.values(result.builtOutputs).map((r) => r.outPath), [outPath]);
    const logText = replies.buildLog.flatMap((m) => m.type === "result" ? m.fields : []);
    assert(logText.includes("built"), JSON.stringify(replies.buildLog));

    const echo = new WireWriter().writeRaw(encodeHello({ magic: WORKER_MAGIC_2, version }));
    writeClientHandshakeInfo(echo, replies.handshake, version);
    const writeLog = (log: StderrMessage[]) =>
      log.forEach((m) => writeStderrMessage(echo, m, version));
    const writeInfo = (reply: { log: StderrMessage[]; info: UnkeyedValidPathInfo }) => {
      writeLog(reply.log);
      echo.writeBool(true);
      writeUnkeyedValidPathInfo(echo, reply.info, ctx);
    };
    writeLog(replies.greeting);
    writeLog(replies.setOptions);
    writeInfo(replies.depInfo);
    writeLog(replies.buildLog);
    echo.writeList(replies.results, (w, r) => writeKeyedBuildResult(w, r, ctx));
    writeInfo(replies.outInfo);
    assertEquals(echo.finish(), bytes);
  },
);

nixOracleTest(
  "AddToStoreNar with framed data (1.23+) adds the path nix-daemon --stdio then describes",
  async (nix) => {
    const { dep } = await instantiate(nix, { name: "n", script: ":" });
    const nar = (await nix.runRaw("nix-store", ["--dump", dep])).bytes;
    const version = WORKER_PROTOCOL_VERSION;
    const ctx = { storeDir: nix.storeDir, version };
    const path = `${nix.storeDir}/${"0".repeat(32)}-added`;
    const info = {
      path,
      narHash: hashBytes("sha256", nar),
      references: [],
      registrationTime: 1700000000,
      narSize: nar.length,
      ultimate: false,
      sigs: [],
    };

    const request = new WireWriter().writeInt(WORKER_MAGIC_1).writeInt(version);
    writeClientObsoleteFields(request, { reserveSpace: false }, version);
    request.writeInt(WorkerOp.AddToStoreNar);
    writeValidPathInfo(request, info, ctx);
    request.writeBool(false).writeBool(true).writeRaw(encodeFramed(nar, 100));
    request.writeInt(WorkerOp.QueryPathInfo).writeString(path);
    const { replies } = await converse(nix, {
      command: ["nix-daemon", "--stdio"],
      request: request.finish(),
      parse: (reader) => {
        readHello(reader, WORKER_MAGIC_2);
        readClientHandshakeInfo(reader, version);
        readStderrMessages(reader, version);
        const added = readStderrMessages(reader, version);
        const queried = readStderrMessages(reader, version);
        return {
          added,
          queried,
          valid: reader.readBool(),
          info: readUnkeyedValidPathInfo(reader, ctx),
        };
      },
    });

    assertEquals(replies.added.at(-1), { type: "last" });
    assertEquals(replies.valid, true);
    const { path: _, ...unkeyed } = info;
    assertEquals(replies.info, unkeyed);
    assertEquals((await nix.runRaw("nix-store", ["--dump", path])).bytes, nar);
  },
);
