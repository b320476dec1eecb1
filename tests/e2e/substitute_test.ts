/**
 * Real Nix and kiln exchange closures through binary caches: kiln imports a signed cache Nix
 * wrote (`kiln copy --from` and the library's plan + runGoals path), and Nix substitutes from a
 * cache kiln wrote (`kiln copy --to`) and from `kiln serve`, verifying kiln's signatures.
 */

import { removeTree } from "../../lib/store/mod.ts";
import { assert, assertEquals, assertMatch } from "../_assert.ts";
import { join } from "node:path";
import { parseHash } from "../../lib/hashing/mod.ts";
import { runGoals } from "../../lib/scheduler/mod.ts";
import { LocalStore } from "../../lib/store/mod.ts";
import { BinaryCache, parsePublicKey, Substituter } from "../../lib/substituter/mod.ts";
import { KilnStore } from "../_kiln.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";
import { readUntil } from "../_process.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
/** Derivations in the chain; each output also refers to a `builtins.toFile` source. */
const CHAIN = 12;

/** Builds a chain of CHAIN outputs in Nix (each refers to the previous and to a text source). */
async function buildChain(nix: NixSandbox): Promise<string> {
  const expr = `
    let
      step = prev: i: derivation {
        name = "chain-\${toString i}";
        system = builtins.currentSystem;
        builder = "/bin/sh";
        args = [ "-c" ''
          /bin/mkdir -p $out/bin
          echo \${builtins.toFile "src-\${toString i}" "source \${toString i}"} > $out/src
          echo \${if prev == null then "none" else prev} > $out/prev
          printf '#!/bin/sh\\necho %s\\n' $out > $out/bin/run
          /bin/chmod +x $out/bin/run
          /bin/ln -s bin/run $out/link
        '' ];
      };
    in builtins.foldl' step null (builtins.genList (i: i) ${CHAIN})`;
  const drv = (await nix.run("nix-instantiate", ["--expr", expr])).trim();
  return (await nix.run("nix-store", ["--realise", drv])).trim();
}

/** path -> [narHash (SRI), narSize, references] for a closure, as Nix 2.8 reports it. */
async function nixClosureInfo(nix: NixSandbox, top: string): Promise<Map<string, unknown>> {
  const out = JSON.parse(await nix.run("nix", ["path-info", "--json", "--recursive", top])) as {
    path: string;
    narHash: string;
    narSize: number;
    references: string[];
  }[];
  return new Map(
    out.map((i) => [i.path, [
      parseHash(i.narHash).toString("sri"),
      i.narSize,
      [...i.references].sort(),
    ]]),
  );
}

async function kilnClosureInfo(kiln: KilnStore, top: string): Promise<Map<string, unknown>> {
  const out = JSON.parse(await kiln.ok(["store", "path-info", "--json", "--recursive", top]));
  return new Map(
    Object.entries(out as Record<string, { narHash: string; narSize: number; references: [] }>)
      .map(([path, i]) => [path, [i.narHash, i.narSize, i.references]]),
  );
}

function sorted(map: Map<string, unknown>): [string, unknown][] {
  return [...map].sort((a, b) => a[0].localeCompare(b[0]));
}

Deno.test({
  name:
    "kiln substitutes from Nix's binary caches; Nix substitutes from kiln's cache and kiln serve",
  ignore: !nixAvailable,
  async fn(t) {
    const nix = new NixSandbox("sandbox = false\n");
    const kiln = new KilnStore(nix.storeDir);
    try {
      const top = await buildChain(nix);
      const expected = await nixClosureInfo(nix, top);
      assert(expected.size >= 20, `closure of ${expected.size} paths`);
      const nixSk = join(nix.root, "nix.sk");
      const nixPk = join(nix.root, "nix.pk");
      await nix.run("nix-store", ["--generate-binary-cache-key", "nix-test-1", nixSk, nixPk]);
      const nixCache = join(nix.root, "nix-cache");
      await nix.run("nix", ["copy", "--to", `file://${nixCache}?secret-key=${nixSk}`, top]);
      const nixKey = Deno.readTextFileSync(nixPk);

      await t.step("kiln copy --from Nix's cache: same paths, NAR hashes, references", async () => {
        const refused = await kiln.run(["copy", "--from", `file://${nixCache}`, top]);
        assertEquals(refused.code, 1);
        assertMatch(refused.stderr, /is not signed|has no valid signature/);
        await kiln.ok([
          "copy",
          "--from",
          `file://${nixCache}`,
          top,
          "--option",
          "trusted-public-keys",
          nixKey,
        ]);
        assertEquals(sorted(await kilnClosureInfo(kiln, top)), sorted(expected));
      });

      await t.step(
        "an unsigned cache: content-addressed paths come, checked; others are refused",
        async () => {
          // As Nix: a path whose CA field yields it needs no signature (nix-store --add makes
          // fixed:r:sha256, --add-fixed a flat one, builtins.toFile a text one), and its contents
          // are checked against that field; an input-addressed path needs a signature.
          const file = Deno.makeTempFileSync({ dir: nix.root });
          Deno.writeTextFileSync(file, "added\n");
          const added = (await nix.run("nix-store", ["--add", file])).trim();
          const flat = (await nix.run("nix-store", ["--add-fixed", "sha256", file])).trim();
          const source = [...expected.keys()].find((p) => p.endsWith("-src-3"))!;
          const unsigned = join(nix.root, "unsigned-cache");
          await nix.run("nix", [
            "copy",
            "--to",
            `file://${unsigned}?compression=none`,
            added,
            flat,
            source,
            top,
          ]);
          const other = new KilnStore(nix.storeDir);
          try {
            const cas = [/^fixed:r:sha256:/, /^fixed:sha256:/, /^text:sha256:/];
            for (const [i, path] of [added, flat, source].entries()) {
              await other.ok(["copy", "--from", `file://${unsigned}`, path]);
              const infos = JSON.parse(await other.ok(["store", "path-info", "--json", path]));
              assertMatch(infos[path].ca, cas[i]);
            }
            const refused = await other.run(["copy", "--from", `file://${unsigned}`, top]);
            assertEquals(refused.code, 1);
            assertMatch(refused.stderr, /is not signed/);
          } finally {
            other.cleanup();
          }
          // A text path whose NAR the narinfo describes, but whose contents are not its own.
          const forged = join(nix.root, "forged-cache");
          await nix.run("nix", ["copy", "--to", `file://${forged}?compression=none`, source]);
          const other2 = new KilnStore(nix.storeDir);
          try {
            const name = `${
              source.slice(nix.storeDir.length + 1, nix.storeDir.length + 33)
            }.narinfo`;
            const narinfo = Deno.readTextFileSync(join(forged, name));
            const wrong = Deno.makeTempFileSync({ dir: nix.root });
            Deno.writeTextFileSync(wrong, "not the source\n");
            const nar = new TextEncoder().encode(await nix.run("nix-store", ["--dump", wrong]));
            Deno.writeFileSync(join(forged, "nar", "forged.nar"), nar);
            const narHash = (await nix.run("nix-hash", [
              "--type",
              "sha256",
              "--base32",
              "--flat",
              join(forged, "nar", "forged.nar"),
            ])).trim();
            Deno.writeTextFileSync(
              join(forged, name),
              narinfo.replace(/^URL: .*$/m, "URL: nar/forged.nar")
                .replace(/^FileHash: .*\n/m, "").replace(/^FileSize: .*\n/m, "")
                .replace(/^NarHash: .*$/m, `NarHash: sha256:${narHash}`)
                .replace(/^NarSize: .*$/m, `NarSize: ${nar.length}`),
            );
            const r = await other2.run(["copy", "--from", `file://${forged}`, source]);
            assertEquals(r.code, 1, r.stderr);
            assertMatch(
              r.stderr,
              /ca hash mismatch importing path '[^']+-src-3': specified sha256:/,
            );
            assertEquals((await other2.run(["store", "path-info", source])).code, 1);
          } finally {
            other2.cleanup();
          }
        },
      );

      await t.step("the library's plan + runGoals substitutes the same closure", async () => {
        const root = Deno.makeTempDirSync({ prefix: "kiln-e2e-lib-" });
        const store = LocalStore.open({
          storeDir: nix.storeDir,
          storeRoot: join(root, "root"),
          stateDir: join(root, "state"),
        });
        try {
          const cache = BinaryCache.open(`file://${nixCache}`, { storeDir: nix.storeDir });
          const substituter = await Substituter.open(store, [cache], {
            trustedKeys: [parsePublicKey(nixKey)],
          });
          const plan = await substituter.planSubstitution([top]);
          assertEquals(plan.graph.size, expected.size);
          const results = await runGoals(plan.graph, [top], {
            build: () => Promise.reject(new Error("no builds")),
            substitute: (p, signal) => substituter.substitutePath(p, signal),
          });
          assertEquals([...results.values()].every((r) => r.status === "substituted"), true);
          for (const [path, [narHash]] of expected as Map<string, [string]>) {
            assertEquals(store.queryPathInfo(path)?.narHash.toString("sri"), narHash);
          }
        } finally {
          store.close();
          removeTree(root);
        }
      });

      const kilnSk = join(kiln.root, "kiln.sk");
      const kilnPk = join(kiln.root, "kiln.pk");
      await kiln.ok([
        "key",
        "generate",
        "kiln-test-1",
        "--secret-file",
        kilnSk,
        "--public-file",
        kilnPk,
      ]);
      const kilnKey = Deno.readTextFileSync(kilnPk);

      const nixSubstitutes = async (url: string) => {
        await nix.run("nix-store", ["--gc"]);
        assertEquals((await nix.runRaw("nix-store", ["--check-validity", top])).code, 1);
        await nix.run("nix-store", [
          "--realise",
          top,
          "--option",
          "substituters",
          url,
          "--option",
          "trusted-public-keys",
          kilnKey,
        ]);
        assertEquals(sorted(await nixClosureInfo(nix, top)), sorted(expected));
        const [info] = JSON.parse(await nix.run("nix", ["path-info", "--json", "--sigs", top]));
        assert((info.signatures as string[]).some((s) => s.startsWith("kiln-test-1:")));
        await nix.run("nix-store", ["--verify", "--check-contents"]);
      };

      for (const compression of ["zstd", "xz"]) {
        await t.step(`Nix substitutes from kiln copy --to (${compression})`, async () => {
          const dir = join(kiln.root, `cache-${compression}`);
          await kiln.ok([
            "copy",
            "--to",
            `file://${dir}?secret-key=${kilnSk}`,
            "--compression",
            compression,
            top,
          ]);
          await nixSubstitutes(`file://${dir}`);
        });
      }

      await t.step("Nix substitutes from kiln serve", async () => {
        const child = new Deno.Command(Deno.execPath(), {
          args: ["run", "--allow-all", "--quiet", MAIN, "serve", "--listen", "127.0.0.1:0"],
          env: { ...kiln.env, KILN_CONFIG: `secret-key-files = ${kilnSk}\n` },
          stdout: "null",
          stderr: "piped",
        }).spawn();
        const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
        const text = await readUntil(reader, "\n");
        const drain = (async () => {
          while (!(await reader.read()).done) {
            // keep the pipe from filling up
          }
        })();
        try {
          const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(text)?.[1];
          assert(url, `no address in '${text}'`);
          await nixSubstitutes(url);
        } finally {
          child.kill("SIGTERM");
          assertEquals((await child.status).code, 0);
          await drain;
        }
      });
    } finally {
      kiln.cleanup();
      nix.cleanup();
    }
  },
});
