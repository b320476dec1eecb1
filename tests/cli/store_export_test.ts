import { parseHash } from "../../lib/hashing/mod.ts";
import { assertEquals, assertMatch } from "../_assert.ts";
import { KilnStore } from "../_kiln.ts";
import type { NixSandbox } from "../_nix.ts";
import { closureIgnored, lines, withClosure } from "./_closure.ts";

interface Info {
  narHash: string;
  narSize: number;
  references: string[];
  deriver: string | null;
}

/** What the export format carries, per path, from Nix 2.8's `nix path-info --json`. */
async function nixInfos(nix: NixSandbox, paths: string[]): Promise<Record<string, Info>> {
  const json = JSON.parse(
    await nix.run("nix", ["path-info", "--json", ...paths]),
  ) as (Info & { path: string })[];
  return Object.fromEntries(json.map((i) => [i.path, pick(i)]));
}

async function kilnInfos(kiln: KilnStore, paths: string[]): Promise<Record<string, Info>> {
  const json = JSON.parse(await kiln.ok(["store", "path-info", "--json", ...paths])) as Record<
    string,
    Info
  >;
  return Object.fromEntries(Object.entries(json).map(([p, i]) => [p, pick(i)]));
}

function pick(i: Info): Info {
  return {
    narHash: parseHash(i.narHash).toString("sri"),
    narSize: i.narSize,
    references: [...i.references].sort(),
    deriver: i.deriver ?? null,
  };
}

Deno.test({
  name: "kiln store export writes what nix-store --export writes, byte for byte",
  ignore: closureIgnored,
  fn: () =>
    withClosure(async (nix, kiln, c) => {
      const closure = lines(await nix.run("nix-store", ["-q", "-R", c.topDrv, c.top]));
      // Signatures are no part of the format (Nix writes "no legacy signature"): signing the
      // paths on both sides changes nothing in the file.
      const [sk, pk] = [`${nix.root}/sk`, `${nix.root}/pk`];
      await nix.run("nix-store", ["--generate-binary-cache-key", "test-1", sk, pk]);
      await nix.run("nix", ["store", "sign", "-k", sk, c.top, c.leaf]);
      await kiln.ok(["store", "sign", "--key-file", sk, c.top, c.leaf]);
      for (const paths of [closure, [c.top, c.leaf], [c.multi[1]], [...closure].reverse()]) {
        const [want, got] = await Promise.all([
          nix.runRaw("nix-store", ["--export", ...paths]),
          kiln.run(["store", "export", ...paths]),
        ]);
        assertEquals(got.code, 0, got.stderr);
        assertEquals(got.bytes, want.bytes, `export of ${paths.length} paths`);
      }
    }),
});

Deno.test({
  name: "kiln store import takes Nix 2.8's export and Nix imports kiln's, deriver kept",
  ignore: closureIgnored,
  fn: () =>
    withClosure(async (nix, kiln, c) => {
      const closure = lines(await nix.run("nix-store", ["-q", "-R", c.top, c.self, ...c.multi]));
      const before = await nixInfos(nix, closure);
      assertEquals(before[c.top].deriver, c.topDrv);

      // Nix -> kiln: a fresh kiln store of the same store dir.
      const fresh = new KilnStore(nix.storeDir);
      try {
        const file = (await nix.runRaw("nix-store", ["--export", ...closure])).bytes;
        assertEquals(lines(await fresh.ok(["store", "import"], file)), closure);
        assertEquals(await kilnInfos(fresh, closure), before);
        // Importing again adds nothing and still names the paths, as Nix.
        assertEquals(lines(await fresh.ok(["store", "import"], file)), closure);
      } finally {
        fresh.cleanup();
      }

      // kiln -> Nix: the outputs deleted from Nix's store come back from kiln's export.
      const kilnFile = (await kiln.run(["store", "export", ...closure])).bytes;
      await nix.run("nix-store", ["--delete", ...closure]);
      assertEquals((await nix.runRaw("nix-store", ["--check-validity", c.leaf])).code, 1);
      assertEquals(lines(await nix.run("nix-store", ["--import"], kilnFile)), closure);
      assertEquals(await nixInfos(nix, closure), before);
      await nix.run("nix-store", ["--verify-path", ...closure]);
    }),
});

Deno.test({
  name: "kiln store import refuses a path whose references are missing and keeps what came before",
  ignore: closureIgnored,
  fn: () =>
    withClosure(async (nix, _kiln, c) => {
      const fresh = new KilnStore(nix.storeDir);
      try {
        const file = (await nix.runRaw("nix-store", ["--export", c.leaf, c.mid, c.top])).bytes;
        const r = await fresh.run(["store", "import"], file);
        assertEquals(r.code, 1);
        assertMatch(r.stderr, /^error: Cannot add '.*-top': its reference '.*' is not valid\n$/);
        assertEquals(
          lines(await fresh.ok(["store", "query", "--references", c.mid])),
          [c.leaf],
        );
        assertEquals((await fresh.run(["store", "query", "--size", c.top])).code, 1);

        const bad = await fresh.run(["store", "import"], file.subarray(0, 100));
        assertEquals(bad.code, 1);
        assertEquals(bad.stderr, "error: Export stream ends too early\n");
        const garbage = await fresh.run(
          ["store", "import"],
          new Uint8Array([7, 0, 0, 0, 0, 0, 0, 0]),
        );
        assertMatch(garbage.stderr, /^error: Input does not look like .*--export'\n$/);
      } finally {
        fresh.cleanup();
      }
    }),
});
