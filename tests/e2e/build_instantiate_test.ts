/**
 * `kiln build $(nix-instantiate hello.nix)`: the `.drv` files and sources Nix 2.8 wrote into its
 * store (the logical store dir kiln shares) are read from there, checked and added by the build.
 */

import { join } from "node:path";
import { probeSandbox } from "../../lib/sandbox/mod.ts";
import { parseHash } from "../../lib/hashing/mod.ts";
import { assertEquals, assertStringIncludes } from "../_assert.ts";
import { KilnStore } from "../_kiln.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";
import { HOST_SANDBOX_PATHS } from "./_drv.ts";

const ignore = !nixAvailable || !(await probeSandbox()).ok;

// Every kind of input source: a file and a directory by NAR hash, a file by flat hash
// (builtins.path without recursion) and a text naming another source (builtins.toFile).
const HELLO = `
let
  dep = derivation { name = "dep"; system = "x86_64-linux"; builder = "/bin/sh";
    args = ["-c" "echo dep > $out"]; };
in derivation {
  name = "hello"; system = "x86_64-linux"; builder = "/bin/sh";
  args = [ "-c" ". \${./builder.sh}" ];
  data = ./data;
  flat = builtins.path { path = ./data/file; name = "flat-file"; recursive = false; };
  greeting = builtins.toFile "greeting" "hello from \${./data}";
  inherit dep;
}
`;

const BUILDER = `read -r g < "$greeting"
read -r x < "$data/file"
read -r f < "$flat"
read -r d < "$dep"
echo "$g $x $f $d" > "$out"
`;

/** Runs `fn` with a Nix sandbox holding hello.nix and a kiln store on the same store dir. */
async function withInstantiated(
  fn: (kiln: KilnStore, nix: NixSandbox, drv: string) => Promise<void>,
): Promise<void> {
  const nix = new NixSandbox("sandbox = false\n");
  const kiln = new KilnStore(nix.storeDir);
  kiln.env.KILN_CONFIG = `sandbox-paths = ${HOST_SANDBOX_PATHS}\n`;
  try {
    const dir = join(nix.root, "src");
    Deno.mkdirSync(join(dir, "data"), { recursive: true });
    Deno.writeTextFileSync(join(dir, "data", "file"), "datum\n");
    Deno.writeTextFileSync(join(dir, "builder.sh"), BUILDER);
    Deno.writeTextFileSync(join(dir, "hello.nix"), HELLO);
    const drv = (await nix.run("nix-instantiate", [join(dir, "hello.nix")])).trim();
    await fn(kiln, nix, drv);
  } finally {
    kiln.cleanup();
    nix.cleanup();
  }
}

Deno.test({
  name: "kiln build DRV adds a drv nix-instantiate wrote, with its inputs, and builds it",
  ignore,
  fn: () =>
    withInstantiated(async (kiln, nix, drv) => {
      const r = await kiln.run(["build", drv]);
      assertEquals(r.code, 0, r.stderr);
      // Nix's output path, without a Nix build: one as root kills the processes of its build
      // user, which another test's Nix (with its own state dir) may be using at the same time.
      assertEquals(r.stdout, await nix.run("nix-store", ["--query", "--outputs", drv]));
      const text = Deno.readTextFileSync(kiln.physical(r.stdout.trim()));
      const data = (await nix.run("nix-store", ["--query", "--references", drv])).trim()
        .split("\n").find((p) => p.endsWith("-data"));
      assertEquals(text, `hello from ${data} datum datum dep\n`);
      // Every source and derivation landed at Nix's path, with Nix's contents.
      const closure = (await nix.run("nix-store", ["--query", "--requisites", drv])).trim()
        .split("\n");
      assertEquals(closure.length, 6, closure.join("\n")); // 2 drvs, 4 sources
      const kilnInfo = JSON.parse(await kiln.ok(["store", "path-info", "--json", ...closure]));
      const nixHashes = (await nix.run("nix-store", ["--query", "--hash", ...closure])).trim()
        .split("\n");
      for (const [i, path] of closure.entries()) {
        assertEquals(kilnInfo[path]?.narHash, parseHash(nixHashes[i]).toString("sri"), path);
      }
    }),
});

Deno.test({
  name: "kiln build DRV refuses a drv file whose text does not hash to its path",
  ignore,
  fn: () =>
    withInstantiated(async (kiln, nix, drv) => {
      const dep = (await nix.run("nix-store", ["--query", "--references", drv])).trim().split("\n")
        .find((p) => p.endsWith("-dep.drv"))!;
      const text = Deno.readTextFileSync(dep);
      Deno.chmodSync(dep, 0o644);
      Deno.writeTextFileSync(dep, text.replace("echo dep", "echo bad"));
      const r = await kiln.run(["build", drv]);
      assertEquals(r.code, 1);
      assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
      assertStringIncludes(r.stderr, `error: Derivation '${dep}' does not hash to its path`);
      // Nothing was added: no derivation, no source.
      const closure = (await nix.run("nix-store", ["--query", "--requisites", drv])).trim()
        .split("\n");
      assertEquals(closure.length, 6, closure.join("\n"));
      for (const path of closure) {
        const info = await kiln.run(["store", "path-info", path]);
        assertEquals(info.code, 1, path);
        assertStringIncludes(info.stderr, "not valid");
      }
      // A source whose contents no longer give its path is refused too.
      Deno.writeTextFileSync(dep, text);
      const builder = closure.find((p) => p.endsWith("-builder.sh"))!;
      Deno.chmodSync(builder, 0o644);
      Deno.writeTextFileSync(builder, "exit 0\n");
      const s = await kiln.run(["build", drv]);
      assertEquals(s.code, 1);
      assertEquals(s.stderr, `error: Input source '${builder}' does not hash to its path\n`);
    }),
});
