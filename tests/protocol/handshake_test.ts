import { assertEquals, assertThrows } from "../_assert.ts";
import {
  type ClientHandshakeInfo,
  DEFAULT_SERVE_BUILD_OPTIONS,
  encodeHello,
  negotiateVersion,
  OBSOLETE_WORKER_OPS,
  readClientHandshakeInfo,
  readClientObsoleteFields,
  readHello,
  readServeBuildOptions,
  SERVE_MAGIC_2,
  type ServeBuildOptions,
  WireFormatError,
  WireReader,
  WireWriter,
  WORKER_MAGIC_2,
  WORKER_PROTOCOL_VERSION,
  WorkerOp,
  workerOpName,
  writeClientHandshakeInfo,
  writeClientObsoleteFields,
  writeServeBuildOptions,
} from "../../lib/protocol/mod.ts";
import { readVectorBytes } from "./_vectors.ts";

Deno.test("readHello() reads the greetings Nix's handshakes send and encodeHello() writes them", () => {
  for (
    const [dir, magic, version] of [["worker", WORKER_MAGIC_2, 0x10a], [
      "serve",
      SERVE_MAGIC_2,
      0x205,
    ]] as const
  ) {
    const bytes = readVectorBytes(dir, "handshake-to-client");
    const reader = new WireReader(bytes);
    assertEquals(readHello(reader, magic), { magic, version });
    reader.expectEnd();
    assertEquals(encodeHello({ magic, version }), new Uint8Array(bytes));
  }
});

Deno.test("readHello() rejects a wrong magic number with its offset", () => {
  const bytes = readVectorBytes("serve", "handshake-to-client");
  const error = assertThrows(
    () => readHello(new WireReader(bytes), WORKER_MAGIC_2),
    WireFormatError,
  );
  assertEquals((error as WireFormatError).offset, 8);
});

// The values of Nix's test program for client-handshake-info_1_30, _1_33 and _1_35.
const HANDSHAKE_INFOS: [number, ClientHandshakeInfo[]][] = [
  [30, [{}]],
  [33, [{ daemonNixVersion: "foo" }, { daemonNixVersion: "bar" }]],
  [35, [
    { daemonNixVersion: "foo", remoteTrustsUs: false },
    { daemonNixVersion: "bar", remoteTrustsUs: true },
  ]],
];

for (const [minor, infos] of HANDSHAKE_INFOS) {
  Deno.test(`ClientHandshakeInfo at 1.${minor} matches Nix's vector both ways`, () => {
    const version = (1 << 8) | minor;
    const bytes = readVectorBytes("worker", `client-handshake-info_1_${minor}`);
    const reader = new WireReader(bytes);
    assertEquals(infos.map(() => readClientHandshakeInfo(reader, version)), infos);
    reader.expectEnd();
    const writer = new WireWriter();
    for (const info of infos) writeClientHandshakeInfo(writer, info, version);
    assertEquals(writer.finish(), new Uint8Array(bytes));
  });
}

// The values of Nix's test program for build-options-2.1, 2.2, 2.3 and 2.7 (no JSON there).
const BASE = { maxSilentTime: 5, buildTimeout: 6 };
const OPTIONS: [number, Partial<ServeBuildOptions>][] = [
  [1, BASE],
  [2, { ...BASE, maxLogSize: 7 }],
  [3, { ...BASE, maxLogSize: 7, nrRepeats: 8, enforceDeterminism: true }],
  [7, { ...BASE, maxLogSize: 7, nrRepeats: 8, enforceDeterminism: false, keepFailed: true }],
];

for (const [minor, given] of OPTIONS) {
  Deno.test(`ServeBuildOptions at 2.${minor} match Nix's vector both ways`, () => {
    const version = (2 << 8) | minor;
    const options: ServeBuildOptions = { ...DEFAULT_SERVE_BUILD_OPTIONS, ...given };
    const bytes = readVectorBytes("serve", `build-options-2.${minor}`);
    const reader = new WireReader(bytes);
    assertEquals(readServeBuildOptions(reader, version), options);
    reader.expectEnd();
    const writer = new WireWriter();
    writeServeBuildOptions(writer, options, version);
    assertEquals(writer.finish(), new Uint8Array(bytes));
  });
}

Deno.test("negotiateVersion() takes the lower version and refuses other majors and old minors", () => {
  const v1_26 = (1 << 8) | 26;
  const v1_38 = (1 << 8) | 38;
  assertEquals(negotiateVersion(WORKER_PROTOCOL_VERSION, v1_26), v1_26);
  assertEquals(negotiateVersion(WORKER_PROTOCOL_VERSION, v1_38), WORKER_PROTOCOL_VERSION);
  assertThrows(() => negotiateVersion(WORKER_PROTOCOL_VERSION, (2 << 8) | 34), RangeError, "2.34");
  assertThrows(() => negotiateVersion(WORKER_PROTOCOL_VERSION, 0x109), RangeError, "too old");
});

Deno.test("client obsolete fields: affinity from 1.14, reserveSpace from 1.11", () => {
  for (const [minor, size] of [[10, 0], [11, 8], [14, 16]]) {
    const version = (1 << 8) | minor;
    const writer = new WireWriter();
    writeClientObsoleteFields(writer, { reserveSpace: true }, version);
    const bytes = writer.finish();
    assertEquals(bytes.length, size);
    assertEquals(readClientObsoleteFields(new WireReader(bytes), version), {
      reserveSpace: minor >= 11,
    });
  }
  const writer = new WireWriter();
  writeClientObsoleteFields(writer, { cpuAffinity: 3, reserveSpace: false }, 0x122);
  assertEquals(readClientObsoleteFields(new WireReader(writer.finish()), 0x122), {
    cpuAffinity: 3,
    reserveSpace: false,
  });
});

Deno.test("workerOpName() names 2.8's ops and none of the obsolete ones", () => {
  assertEquals(workerOpName(WorkerOp.BuildPathsWithResults), "BuildPathsWithResults");
  assertEquals(workerOpName(1), "IsValidPath");
  for (const op of OBSOLETE_WORKER_OPS) assertEquals(workerOpName(op), undefined);
  assertEquals(Object.keys(WorkerOp).length, 34);
});
