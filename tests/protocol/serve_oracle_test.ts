/**
 * Nix 2.8's `nix-store --serve --write` as the oracle: a whole conversation encoded by
 * lib/protocol (handshake, QueryPathInfos, BuildDerivation with a BasicDerivation and build
 * options), and Nix's replies decoded by it and re-encoded to the same bytes.
 */

import { assert, assertEquals } from "../_assert.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";
import { parseDerivation } from "../../lib/derivation/mod.ts";
import { parseHash } from "../../lib/hashing/mod.ts";
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
  WireReader,
  WireTruncatedError,
  WireWriter,
  writeBasicDerivation,
  writeServeBuildOptions,
  writeServeBuildResult,
  writeServePathInfos,
  writeStringSet,
} from "../../lib/protocol/mod.ts";

Deno.test({
  name: "serve protocol codecs speak with Nix 2.8's nix-store --serve: path infos and a build",
  ignore: !nixAvailable,
  async fn() {
    const nix = new NixSandbox("sandbox = false\n");
    try {
      const expr = `derivation {
        name = "x"; system = builtins.currentSystem; builder = "/bin/sh";
        args = [ "-c" "echo \${builtins.toFile "dep" "dep"} > $out" ];
      }`;
      const drvPath = (await nix.run("nix-instantiate", ["--expr", expr])).trim();
      const drv = parseDerivation(Deno.readTextFileSync(drvPath), "x");
      const [dep] = drv.inputSrcs;
      const outPath = (drv.outputs.get("out") as { path: string }).path;
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
      const { bytes, replies } = await converse(nix, request.finish(), (reader) => {
        const hello = readHello(reader, SERVE_MAGIC_2);
        const inputs = readServePathInfos(reader, ctx);
        const result = readServeBuildResult(reader, ctx);
        const outputs = readServePathInfos(reader, ctx);
        reader.expectEnd("replies");
        return { hello, inputs, result, outputs };
      });
      const { hello, inputs, result, outputs } = replies;
      assertEquals(hello, { magic: SERVE_MAGIC_2, version });
      assertEquals([...inputs.keys()].sort(), [dep, drvPath].sort());
      for (const [path, info] of [...inputs, ...outputs]) {
        const hash = (await nix.run("nix-store", ["-q", "--hash", path])).trim();
        assert(info.narHash?.equals(parseHash(hash)), `${path}: ${hash}`);
        const refs = (await nix.run("nix-store", ["-q", "--references", path])).trim();
        assertEquals([...info.references].sort(), refs === "" ? [] : refs.split("\n").sort());
      }
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
    } finally {
      nix.cleanup();
    }
  },
});

/**
 * Runs `nix-store --serve --write`, sends `request` and reads until `parse` accepts the replies
 * (a WireTruncatedError means "more to come"); only then closes stdin, since Nix interrupts a
 * build whose client hangs up.
 */
async function converse<T>(
  nix: NixSandbox,
  request: Uint8Array,
  parse: (reader: WireReader) => T,
): Promise<{ bytes: Uint8Array; replies: T }> {
  const child = new Deno.Command("nix-store", {
    args: ["--serve", "--write"],
    env: nix.env,
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const input = child.stdin.getWriter();
  const chunks: Uint8Array[] = [];
  let replies: T | undefined;
  try {
    await input.write(request);
    for await (const chunk of child.stdout) {
      chunks.push(chunk);
      try {
        replies = parse(WireReader.fromChunks(chunks));
        break;
      } catch (e) {
        if (!(e instanceof WireTruncatedError)) throw e;
      }
    }
  } catch (e) {
    child.kill();
    await child.status;
    throw e;
  }
  await input.close();
  assertEquals((await child.status).code, 0);
  if (replies === undefined) throw new Error("nix-store --serve ended before its replies did");
  const joined = WireReader.fromChunks(chunks);
  const bytes = joined.readRaw(joined.remaining);
  return { bytes: new Uint8Array(bytes), replies };
}
