import { assertEquals } from "../_assert.ts";
import {
  type ClientSettings,
  readClientSettings,
  WireReader,
  WireWriter,
  writeClientSettings,
} from "../../lib/protocol/mod.ts";

const SETTINGS: ClientSettings = {
  keepFailed: true,
  keepGoing: false,
  tryFallback: true,
  verbosity: 3,
  maxBuildJobs: 4,
  maxSilentTime: 60,
  verboseBuild: false,
  buildCores: 2,
  useSubstitutes: true,
  overrides: new Map([["sandbox", "false"], ["cores", "2"]]),
};

Deno.test("writeClientSettings() lays SetOptions out as Nix 2.8's RemoteStore::setOptions", () => {
  const writer = new WireWriter();
  writeClientSettings(writer, SETTINGS, (1 << 8) | 34);
  // keepFailed, keepGoing, tryFallback, verbosity, maxBuildJobs, maxSilentTime, useBuildHook
  // (obsolete, true), lvlVomit as verboseBuild is off, logType and printBuildTrace (0),
  // buildCores, useSubstitutes, then the overrides sorted by name.
  const expected = new WireWriter();
  for (const n of [1, 0, 1, 3, 4, 60, 1, 7, 0, 0, 2, 1, 2]) expected.writeInt(n);
  for (const s of ["cores", "2", "sandbox", "false"]) expected.writeString(s);
  const bytes = writer.finish();
  assertEquals(bytes, expected.finish());
  const back = readClientSettings(new WireReader(bytes), (1 << 8) | 34);
  assertEquals(back, { ...SETTINGS, overrides: new Map([["cores", "2"], ["sandbox", "false"]]) });
});

Deno.test("client settings carry no overrides before 1.12", () => {
  const version = (1 << 8) | 11;
  const writer = new WireWriter();
  writeClientSettings(writer, SETTINGS, version);
  const bytes = writer.finish();
  assertEquals(bytes.length, 12 * 8);
  assertEquals(readClientSettings(new WireReader(bytes), version), {
    ...SETTINGS,
    overrides: new Map(),
  });
});
