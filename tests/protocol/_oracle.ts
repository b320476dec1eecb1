/** What the protocol oracle tests share: a derivation to build, and a conversation with Nix. */

import { assert, assertEquals } from "../_assert.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";
import { type Derivation, parseDerivation } from "../../lib/derivation/mod.ts";
import { type Hash, parseHash } from "../../lib/hashing/mod.ts";
import { WireReader, WireTruncatedError } from "../../lib/protocol/mod.ts";

/** A test against real Nix in a throwaway store (ignored where Nix is absent). */
export function nixOracleTest(name: string, fn: (nix: NixSandbox) => Promise<void>): void {
  Deno.test({
    name,
    ignore: !nixAvailable,
    async fn() {
      const nix = new NixSandbox("sandbox = false\n");
      try {
        await fn(nix);
      } finally {
        nix.cleanup();
      }
    },
  });
}

/** A derivation named `name` whose output names its one input source, `dep`; not built yet. */
export interface Instantiated {
  drvPath: string;
  drv: Derivation;
  dep: string;
  outPath: string;
}

/** Instantiates the derivation; `script` runs after the output is written. */
export async function instantiate(
  nix: NixSandbox,
  options: { name: string; script: string },
): Promise<Instantiated> {
  const expr = `derivation {
    name = "${options.name}"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "echo \${builtins.toFile "dep" "dep"} > $out; ${options.script}" ];
  }`;
  const drvPath = (await nix.run("nix-instantiate", ["--expr", expr])).trim();
  const drv = parseDerivation(Deno.readTextFileSync(drvPath), options.name);
  const outPath = (drv.outputs.get("out") as { path: string }).path;
  return { drvPath, drv, dep: drv.inputSrcs[0], outPath };
}

/** Asserts that `info`, as decoded, has the NAR hash and references `nix-store -q` gives. */
export async function assertPathInfoOf(
  nix: NixSandbox,
  path: string,
  info: { narHash?: Hash; references: string[] },
): Promise<void> {
  const hash = (await nix.run("nix-store", ["-q", "--hash", path])).trim();
  assert(info.narHash?.equals(parseHash(hash)), `${path}: ${hash}`);
  const refs = (await nix.run("nix-store", ["-q", "--references", path])).trim();
  assertEquals([...info.references].sort(), refs === "" ? [] : refs.split("\n").sort());
}

/**
 * Runs `command` (a Nix program speaking a protocol on stdin and stdout) in `nix`'s store, sends
 * `request` and reads until `parse` accepts the replies and nothing is left over (a
 * WireTruncatedError means "more to come"); only then closes stdin, since Nix interrupts a build whose client hangs up.
 */
export async function converse<T>(
  nix: NixSandbox,
  options: { command: string[]; request: Uint8Array; parse: (reader: WireReader) => T },
): Promise<{ bytes: Uint8Array; replies: T }> {
  const { command, request, parse } = options;
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
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
        const reader = WireReader.fromChunks(chunks);
        replies = parse(reader);
        reader.expectEnd("replies");
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
  if (replies === undefined) throw new Error(`${command.join(" ")} ended before its replies did`);
  const joined = WireReader.fromChunks(chunks);
  const bytes = joined.readRaw(joined.remaining);
  return { bytes: new Uint8Array(bytes), replies };
}
