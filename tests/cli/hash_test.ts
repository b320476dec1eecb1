import { removeTree } from "../../lib/store/mod.ts";
import { assertEquals, assertMatch } from "../_assert.ts";
import { KilnStore } from "../_kiln.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";
import { HASH_ALGORITHMS, hashBytes } from "../../lib/hashing/mod.ts";
import { makeNarFixture } from "../store/_nar_fixture.ts";

const FORMAT_FLAGS = [[], ["--base16"], ["--base32"], ["--base64"], ["--sri"]];

/** Runs `fn` with a kiln store, a Nix sandbox and the NAR fixture tree; cleans up. */
async function withSetup(fn: (kiln: KilnStore, nix: NixSandbox, tree: string) => Promise<void>) {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-hash-cli-" });
  const nix = new NixSandbox();
  const kiln = new KilnStore(nix.storeDir);
  try {
    makeNarFixture(dir);
    await fn(kiln, nix, dir);
  } finally {
    kiln.cleanup();
    nix.cleanup();
    removeTree(dir);
  }
}

for (const mode of ["path", "file"]) {
  Deno.test({
    name: `kiln hash ${mode} prints what nix hash ${mode} prints, every type and format`,
    ignore: !nixAvailable,
    fn: () =>
      withSetup(async (kiln, nix, tree) => {
        const paths = mode === "path"
          ? [tree, `${tree}/exec.sh`, `${tree}/absolute`, `${tree}/empty-dir`]
          : [`${tree}/regular.txt`, `${tree}/empty`, `${tree}/one-mib-plus-one`];
        const combos = [
          ...HASH_ALGORITHMS.map((t) => ["--type", t, "--base32"]),
          ...FORMAT_FLAGS.map((f) => ["--type", "sha512", ...f]),
          ["--type", "md5", "--base64"],
          [], // default: sha256, SRI
        ];
        await Promise.all(combos.map(async (flags) => {
          const args = ["hash", mode, ...flags, ...paths];
          assertEquals(await kiln.ok(args), await nix.run("nix", args), args.join(" "));
        }));
      }),
  });
}

/** Each algorithm's digest of "kiln" in every text form, as inputs to convert. */
function sampleHashes(): string[] {
  return HASH_ALGORITHMS.flatMap((algo) => {
    const h = hashBytes(algo, "kiln");
    return [
      h.toString("base16", true),
      h.toString("nix32", true),
      h.toString("base64", true),
      h.toString("sri"),
    ];
  });
}

Deno.test({
  name: "kiln hash convert equals nix hash to-base16/32/64/sri for every algorithm",
  ignore: !nixAvailable,
  fn: () =>
    withSetup(async (kiln, nix) => {
      const inputs = sampleHashes();
      const targets = [["base16", "to-base16"], ["base32", "to-base32"], ["nix32", "to-base32"], [
        "base64",
        "to-base64",
      ], ["sri", "to-sri"]];
      await Promise.all(targets.map(async ([to, nixVerb]) => {
        const want = await nix.run("nix", ["hash", nixVerb, ...inputs]);
        assertEquals(await kiln.ok(["hash", "convert", "--to", to, ...inputs]), want, to);
      }));
      // Bare digits need the type.
      await Promise.all(HASH_ALGORITHMS.map(async (algo) => {
        const h = hashBytes(algo, "bare");
        const bare = [h.toString("base16"), h.toString("nix32"), h.toString("base64")];
        const want = await nix.run("nix", ["hash", "to-sri", "--type", algo, ...bare]);
        assertEquals(await kiln.ok(["hash", "convert", "--type", algo, ...bare]), want, algo);
      }));
    }),
});

Deno.test("kiln hash convert rejects a wrong --from, a missing type and a bad hash", async () => {
  const kiln = new KilnStore();
  try {
    const sri = hashBytes("sha256", "x").toString("sri");
    const cases: [string[], RegExp][] = [
      [["--from", "base16", sri], /has format 'sri', but '--from base16' was specified/],
      [[hashBytes("sha1", "x").toString("base16")], /does not include a type/],
      [["sha256:not-a-hash"], /Invalid sha256 hash/],
      [["--type", "sha1", sri], /should have type 'sha1'/],
    ];
    for (const [args, pattern] of cases) {
      const r = await kiln.run(["hash", "convert", ...args]);
      assertEquals(r.code, 1, args.join(" "));
      assertMatch(r.stderr, pattern);
    }
  } finally {
    kiln.cleanup();
  }
});

Deno.test("kiln hash path fails with one line for a missing path", async () => {
  const kiln = new KilnStore();
  try {
    const r = await kiln.run(["hash", "path", "/nonexistent/kiln-test"]);
    assertEquals(r.code, 1);
    assertMatch(r.stderr, /^error: [^\n]*nonexistent\/kiln-test[^\n]*\n$/);
  } finally {
    kiln.cleanup();
  }
});
