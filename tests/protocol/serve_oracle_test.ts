/**
 * Nix 2.8's `nix-store --serve --write` as the oracle: a whole conversation encoded by
 * lib/protocol (handshake, QueryPathInfos, BuildDerivation with a BasicDerivation and build
 * options), and Nix's replies decoded by it and re-encoded to the same bytes.
 */

import { assertEquals } from "../_assert.ts";
import { assertPathInfoOf, converse, instantiate, nixOracleTest } from "./_oracle.ts";
import {
  DEFAULT_SERVE_BUILD_OPTIONS,
  encodeHello,
  readHello,
  readServeBuildResult,
  readServePathInfos,
  SERVE_MAGIC_1,
  SERVE_MAGIC_2,
  SERVE_PROTOCOL_VERSION,
  ServeCommand,
  WireWriter,
  writeBasicDerivation,
  writeServeBuildOptions,
  writeServeBuildResult,
  writeServePathInfos,
  writeStringSet,
} from "../../lib/protocol/mod.ts";

nixOracleTest(
  "serve protocol codecs speak with Nix 2.8's nix-store --serve: path infos and a build",
  async (nix) => {
    const { drvPath, drv, dep, outPath } = await instantiate(nix, {
      name: "x",
      script: ":",
    });
    const version = SERVE_PROTOCOL_VERSION;
    const ctx = { storeDir: nix.storeDir, version };

    const request = new WireWriter().writeRaw(encodeHello({ magic: SERVE_MAGIC_1, version }));
    request.writeInt(ServeCommand.QueryPathInfos);
    writeStringSet(request, [dep, drvPath]);
    request.writeInt(ServeCommand.BuildDerivation).writeString(drvPath);
    writeBasicDerivation(request, drv);
    writeServeBuildOptions(request, DEFAULT_SERVE_BUILD_OPTIONS, version);
    request.writeInt(ServeCommand.QueryPathInfos);
    writeStringSet(request, [outPath]);
    const { bytes, replies } = await converse(nix, {
      command: ["nix-store", "--serve", "--write"],
      request: request.finish(),
      parse: (reader) => ({
        hello: readHello(reader, SERVE_MAGIC_2),
        inputs: readServePathInfos(reader, ctx),
        result: readServeBuildResult(reader, ctx),
        outputs: readServePathInfos(reader, ctx),
      }),
    });
    const { hello, inputs, result, outputs } = replies;
    assertEquals(hello, { magic: SERVE_MAGIC_2, version });
    assertEquals([...inputs.keys()].sort(), [dep, drvPath].sort());
    for (const [path, info] of [...inputs, ...outputs]) await assertPathInfoOf(nix, path, info);
    assertEquals(result.status, "Built", result.errorMsg);
    assertEquals(Deno.readTextFileSync(outPath), `${dep}\n`);
    const realisations = Object.values(result.builtOutputs);
    assertEquals(realisations.map((r) => [r.id.endsWith("!out"), r.outPath]), [[true, outPath]]);
    assertEquals(outputs.get(outPath)?.deriver, drvPath);

    const echo = new WireWriter().writeRaw(encodeHello({ magic: SERVE_MAGIC_2, version }));
    writeServePathInfos(echo, inputs, ctx);
    writeServeBuildResult(echo, result, ctx);
    writeServePathInfos(echo, outputs, ctx);
    assertEquals(echo.finish(), bytes);
  },
);
