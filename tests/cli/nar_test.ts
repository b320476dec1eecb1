import { removeTree } from "../../lib/store/mod.ts";
import { assert, assertEquals, assertMatch } from "../_assert.ts";
import { KilnStore } from "../_kiln.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";
import {
  directoryNar,
  fileEntry,
  makeNarFixture,
  narBytes,
  narToken,
  patternBytes,
} from "../store/_nar_fixture.ts";

/** A kiln store, a Nix sandbox and the fixture tree under a temp dir, for one test. */
async function withSetup(
  fn: (ctx: { kiln: KilnStore; nix: NixSandbox; dir: string; tree: string }) => Promise<void>,
) {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-nar-cli-" });
  const nix = new NixSandbox();
  const kiln = new KilnStore(nix.storeDir);
  try {
    Deno.mkdirSync(`${dir}/tree`);
    makeNarFixture(`${dir}/tree`);
    await fn({ kiln, nix, dir, tree: `${dir}/tree` });
  } finally {
    kiln.cleanup();
    nix.cleanup();
    removeTree(dir);
  }
}

Deno.test({
  name: "kiln nar dump prints nix-store --dump's bytes, and restore inverts it",
  ignore: !nixAvailable,
  fn: () =>
    withSetup(async ({ kiln, nix, dir, tree }) => {
      const expected = (await nix.runRaw("nix-store", ["--dump", tree])).bytes;
      const dumped = await kiln.run(["nar", "dump", tree]);
      assertEquals(dumped.code, 0, dumped.stderr);
      assertEquals(dumped.bytes, expected);
      assertEquals(await kiln.ok(["nar", "restore", `${dir}/restored`], expected), "");
      assertEquals((await kiln.run(["nar", "dump", `${dir}/restored`])).bytes, expected);
      // Real Nix restores what kiln dumped.
      await nix.run("nix-store", ["--restore", `${dir}/by-nix`], dumped.bytes);
      assertEquals((await kiln.run(["nar", "dump", `${dir}/by-nix`])).bytes, expected);
    }),
});

Deno.test({
  name: "kiln nar ls prints what nix nar ls prints",
  ignore: !nixAvailable,
  fn: () =>
    withSetup(async ({ kiln, nix, dir, tree }) => {
      const nar = `${dir}/tree.nar`;
      Deno.writeFileSync(nar, (await nix.runRaw("nix-store", ["--dump", tree])).bytes);
      const flagSets = [[], ["-R"], ["-l"], ["-l", "-R"], ["--json"], ["--json", "-R"], ["-d"]];
      const leaves = ["/exec.sh", "/absolute", "/nested/deeper"];
      const cases: [string[], string][] = [
        ...flagSets.flatMap((flags) =>
          ["/", "/nested"].map((p) => [flags, p] as [string[], string])
        ),
        ...[["-l"], ["--json"]].flatMap((flags) =>
          leaves.map((p) => [flags, p] as [string[], string])
        ),
      ];
      const runs = cases.map(async ([flags, path]) => {
        const args = [...flags, nar, path];
        const want = await nix.run("nix", ["nar", "ls", ...args]);
        const got = await kiln.ok(["nar", "ls", ...args]);
        // Nix 2.8 ends --json output without a newline; kiln ends every line with one.
        assertEquals(got, flags.includes("--json") ? want + "\n" : want, args.join(" "));
      });
      await Promise.all(runs);
      assertEquals(
        await kiln.ok(["nar", "ls", nar]),
        await nix.run("nix", ["nar", "ls", nar, "/"]),
      );
    }),
});

Deno.test("kiln nar ls rejects missing and relative paths", () =>
  withSetup(async ({ kiln, dir, tree }) => {
    const nar = `${dir}/tree.nar`;
    Deno.writeFileSync(nar, (await kiln.run(["nar", "dump", tree])).bytes);
    for (const [path, message] of [["/nope", "does not exist"], ["nested", "is not absolute"]]) {
      const r = await kiln.run(["nar", "ls", nar, path]);
      assertEquals(r.code, 1);
      assertMatch(r.stderr, new RegExp(`^error: .*${message}`));
    }
    const r = await kiln.run(["nar", "ls", "-d", "--json", nar]);
    assertEquals(r.code, 1);
    assertMatch(r.stderr, /'--directory' is useless with '--json'/);
  }));

const link = ["entry", "(", "name", "x", "node", "(", "type", "symlink", "target"];

/** NARs `kiln nar restore` must refuse, each with a fragment of its one-line error. */
const BAD: [string, (outside: string) => Uint8Array, string][] = [
  ["garbage", () => patternBytes(500), "not a Nix archive"],
  ["a truncated NAR", () => directoryNar(fileEntry("a")).slice(0, 200), "truncated"],
  ["'..'", () => directoryNar(fileEntry("..")), "invalid file name '..'"],
  ["'.'", () => directoryNar(fileEntry(".")), "invalid file name '.'"],
  ["'/' in a name", () => directoryNar(fileEntry("a/b")), "invalid file name 'a/b'"],
  ["NUL in a name", () => directoryNar(fileEntry("a\0b")), "invalid file name"],
  ["an empty name", () => directoryNar(fileEntry("")), "invalid file name ''"],
  ["duplicates", () => directoryNar(fileEntry("a"), fileEntry("a")), "duplicate entry"],
  ["unsorted entries", () => directoryNar(fileEntry("b"), fileEntry("a")), "not sorted"],
  [
    "bad padding",
    () => narBytes("nix-archive-1", "(", "type", "regular", "contents", narToken("ab", 1), ")"),
    "non-zero padding",
  ],
  ["trailing data", () => narBytes(directoryNar(), "junk"), "Trailing data"],
  [
    "a path through a symlink",
    (outside) => directoryNar([...link, outside, ")", ")"], fileEntry("x/escaped")),
    "invalid file name 'x/escaped'",
  ],
];

for (const [what, make, message] of BAD) {
  Deno.test(`kiln nar restore rejects ${what}, exit 1, leaving nothing`, async () => {
    const dir = Deno.makeTempDirSync({ prefix: "kiln-nar-cli-" });
    const kiln = new KilnStore();
    try {
      Deno.mkdirSync(`${dir}/outside`);
      const r = await kiln.run(["nar", "restore", `${dir}/out`], make(`${dir}/outside`));
      assertEquals(r.code, 1);
      assertMatch(r.stderr, /^error: [^\n]+\n$/);
      assert(r.stderr.includes(message), r.stderr);
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["outside"]);
      assertEquals([...Deno.readDirSync(`${dir}/outside`)], []);
    } finally {
      kiln.cleanup();
      removeTree(dir);
    }
  });
}

Deno.test("kiln nar restore refuses an existing DIR, exit 1", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-nar-cli-" });
  const kiln = new KilnStore();
  try {
    Deno.mkdirSync(`${dir}/out`);
    const r = await kiln.run(["nar", "restore", `${dir}/out`], directoryNar(fileEntry("a")));
    assertEquals(r.code, 1);
    assertEquals(r.stderr, `error: Destination '${dir}/out' already exists\n`);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["out"]);
    assertEquals([...Deno.readDirSync(`${dir}/out`)], []);
  } finally {
    kiln.cleanup();
    removeTree(dir);
  }
});
