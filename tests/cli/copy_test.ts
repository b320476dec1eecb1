import { assert, assertEquals, assertMatch, assertStringIncludes } from "../_assert.ts";
import { join } from "node:path";
import { KilnStore } from "../_kiln.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l !== "");
}

/** A kiln store with a small closure (a tree and two text-free adds), and a key pair. */
async function setUp(kiln: KilnStore): Promise<{ paths: string[]; sk: string; pk: string }> {
  const src = join(kiln.root, "src");
  Deno.mkdirSync(join(src, "a/bin"), { recursive: true });
  Deno.writeTextFileSync(join(src, "a/bin/x"), "#!/bin/sh\n", { mode: 0o755 });
  Deno.writeTextFileSync(join(src, "b"), "b\n");
  const paths = lines(await kiln.ok(["store", "add", join(src, "a"), join(src, "b")]));
  const sk = join(kiln.root, "sk");
  const pk = join(kiln.root, "pk");
  await kiln.ok(["key", "generate", "test-1", "--secret-file", sk, "--public-file", pk]);
  return { paths, sk, pk };
}

function withStores(fn: (src: KilnStore, dst: KilnStore) => Promise<void>): () => Promise<void> {
  return async () => {
    const src = new KilnStore();
    const dst = new KilnStore();
    try {
      await fn(src, dst);
    } finally {
      src.cleanup();
      dst.cleanup();
    }
  };
}

Deno.test(
  "kiln copy --to and --from move paths through a signed file:// cache",
  withStores(async (src, dst) => {
    const { paths, sk, pk } = await setUp(src);
    const url = `file://${join(src.root, "cache")}`;
    const to = await src.run(["copy", "--to", `${url}?secret-key=${sk}`, ...paths]);
    assertEquals(to.code, 0, to.stderr);
    assertEquals(
      lines(to.stderr).sort(),
      paths.map((p) => `copying path '${p}' to '${url}'`).sort(),
    );
    const again = await src.run(["copy", "--to", url, ...paths]);
    assertEquals([again.code, again.stderr], [0, ""]);

    // Without a trusted key: store add's paths are content-addressed, which needs no signature
    // (as in Nix); the same narinfos without their CA field stand for input-addressed paths,
    // which are refused.
    const inputAddressed = join(src.root, "cache-ia");
    new Deno.Command("cp", { args: ["-r", join(src.root, "cache"), inputAddressed] }).outputSync();
    for (const entry of Deno.readDirSync(inputAddressed)) {
      if (!entry.name.endsWith(".narinfo")) continue;
      const file = join(inputAddressed, entry.name);
      Deno.writeTextFileSync(file, Deno.readTextFileSync(file).replace(/^CA: .*\n/m, ""));
    }
    const unsigned = await dst.run(["copy", "--from", `file://${inputAddressed}`, paths[0]]);
    assertEquals(unsigned.code, 1);
    assertMatch(
      unsigned.stderr,
      /^error: The narinfo of '.*-a' in binary cache 'file:.*' has no valid signature/,
    );
    const other = new KilnStore();
    try {
      await other.ok(["copy", "--from", url, ...paths]);
    } finally {
      other.cleanup();
    }
    const key = Deno.readTextFileSync(pk);
    const from = await dst.run([
      "copy",
      "--from",
      url,
      ...paths,
      "--option",
      "trusted-public-keys",
      key,
    ]);
    assertEquals(from.code, 0, from.stderr);
    assertStringIncludes(from.stderr, `copying path '${paths[0]}' from '${url}'`);
    const info = JSON.parse(await dst.ok(["store", "path-info", "--json", ...paths]));
    const want = JSON.parse(await src.ok(["store", "path-info", "--json", ...paths]));
    for (const path of paths) {
      assertEquals(info[path].narHash, want[path].narHash);
      assertEquals(info[path].ca, want[path].ca);
      assertEquals(info[path].ultimate, false);
      assertEquals(info[path].signatures.length, 1);
      assert(info[path].signatures[0].startsWith("test-1:"));
    }
  }),
);

Deno.test(
  "kiln copy --from accepts unsigned paths with --no-check-sigs or require-sigs false",
  withStores(async (src, dst) => {
    const { paths } = await setUp(src);
    const url = `file://${join(src.root, "cache")}`;
    await src.ok(["copy", "--to", url, "--compression", "xz", paths[0]]);
    await dst.ok(["copy", "--from", url, "--no-check-sigs", paths[0]]);
    const other = new KilnStore();
    try {
      await other.ok(["copy", "--from", url, paths[0], "--option", "require-sigs", "false"]);
      assertEquals(lines(await other.ok(["store", "path-info", paths[0]])).length, 1);
    } finally {
      other.cleanup();
    }
    const nars = [...Deno.readDirSync(join(src.root, "cache/nar"))].map((e) => e.name);
    assertEquals(nars.length, 1);
    assert(nars[0].endsWith(".nar.xz"));
  }),
);

Deno.test(
  "kiln copy reports missing paths, bad URLs and bad usage",
  withStores(async (src, dst) => {
    const { paths } = await setUp(src);
    const url = `file://${join(src.root, "cache")}`;
    await src.ok(["copy", "--to", url, paths[0]]);
    const missing = await dst.run(["copy", "--from", url, "--no-check-sigs", paths[1]]);
    assertEquals(missing.code, 1);
    assertStringIncludes(
      missing.stderr,
      `error: Path '${paths[1]}' is not in binary cache '${url}'`,
    );
    const invalid = await src.run(["copy", "--to", url, "/nix/store/" + "a".repeat(32) + "-x"]);
    assertMatch(invalid.stderr, /^error: Path '.*-x' is not valid/);
    const scheme = await src.run(["copy", "--to", "ftp://x", paths[0]]);
    assertMatch(scheme.stderr, /unsupported scheme 'ftp:'/);
    const both = await src.run(["copy", "--to", url, "--from", url, paths[0]]);
    assertMatch(both.stderr, /exactly one of --to URL and --from URL/);
    const none = await src.run(["copy", "--to", url]);
    assertMatch(none.stderr, /at least one PATH/);
    const method = await src.run(["copy", "--to", url, "--compression", "lz4", paths[0]]);
    assertMatch(method.stderr, /Unsupported compression method 'lz4'/);
    for (const r of [missing, invalid, scheme, both, none, method]) assertEquals(r.code, 1);
  }),
);

Deno.test(
  "kiln store sign adds a signature that kiln copy --from then trusts",
  withStores(async (src, dst) => {
    const { paths, sk, pk } = await setUp(src);
    await src.ok(["store", "sign", "--key-file", sk, ...paths]);
    await src.ok(["store", "sign", "--key-file", sk, ...paths]); // idempotent
    const info = JSON.parse(await src.ok(["store", "path-info", "--json", ...paths]));
    for (const path of paths) assertEquals(info[path].signatures.length, 1);
    const url = `file://${join(src.root, "cache")}`;
    await src.ok(["copy", "--to", url, ...paths]); // no key: the store's signatures go along
    await dst.ok([
      "copy",
      "--from",
      url,
      ...paths,
      "--option",
      "trusted-public-keys",
      Deno.readTextFileSync(pk),
    ]);
    const bad = await src.run(["store", "sign", "--key-file", pk, paths[0]]);
    assertEquals(bad.code, 1);
    assertMatch(bad.stderr, /Secret key .* is not valid/);
  }),
);

Deno.test({
  name: "kiln store sign signs as nix store sign does, byte for byte",
  ignore: !nixAvailable,
  async fn() {
    const nix = new NixSandbox();
    const kiln = new KilnStore(nix.storeDir);
    try {
      const file = join(nix.root, "hello.txt");
      Deno.writeTextFileSync(file, "hello\n");
      const sk = join(nix.root, "sk");
      await nix.run("nix-store", [
        "--generate-binary-cache-key",
        "oracle-1",
        sk,
        join(nix.root, "pk"),
      ]);
      const path = (await nix.run("nix-store", ["--add", file])).trim();
      assertEquals((await kiln.ok(["store", "add", file])).trim(), path);
      await nix.run("nix", ["store", "sign", "--key-file", sk, path]);
      await kiln.ok(["store", "sign", "--key-file", sk, path]);
      const [nixInfo] = JSON.parse(await nix.run("nix", ["path-info", "--json", "--sigs", path]));
      const kilnInfo = JSON.parse(await kiln.ok(["store", "path-info", "--json", path]))[path];
      assertEquals(kilnInfo.signatures, nixInfo.signatures);
    } finally {
      kiln.cleanup();
      nix.cleanup();
    }
  },
});
