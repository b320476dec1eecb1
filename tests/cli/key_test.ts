import { assert, assertEquals, assertStringIncludes } from "../_assert.ts";
import { join } from "node:path";
import { parseHash } from "../../lib/hashing/mod.ts";
import {
  fingerprintPath,
  parsePublicKey,
  parseSecretKey,
  printPublicKey,
  publicKeyOf,
  verifySignatures,
} from "../../lib/substituter/mod.ts";
import { KilnStore } from "../_kiln.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";

async function withKiln(fn: (kiln: KilnStore) => Promise<void>): Promise<void> {
  const kiln = new KilnStore();
  try {
    await fn(kiln);
  } finally {
    kiln.cleanup();
  }
}

Deno.test("kiln key generate writes both keys without a newline, the secret one private", () =>
  withKiln(async (kiln) => {
    const sk = join(kiln.root, "sk");
    const pk = join(kiln.root, "pk");
    await kiln.ok([
      "key",
      "generate",
      "cache.example.org-1",
      "--secret-file",
      sk,
      "--public-file",
      pk,
    ]);
    const secretText = Deno.readTextFileSync(sk);
    const publicText = Deno.readTextFileSync(pk);
    assert(!secretText.endsWith("\n") && !publicText.endsWith("\n"));
    assertEquals(Deno.statSync(sk).mode! & 0o777, 0o600);
    const secret = parseSecretKey(secretText);
    assertEquals(secret.name, "cache.example.org-1");
    assertEquals(printPublicKey(publicKeyOf(secret)), publicText);
    assertEquals(await kiln.ok(["key", "public", "--secret-file", sk]), publicText + "\n");
  }));

Deno.test("kiln key refuses bad key text, existing files and missing flags with exit 1", () =>
  withKiln(async (kiln) => {
    const bad = join(kiln.root, "bad");
    Deno.writeTextFileSync(bad, "not a key");
    let r = await kiln.run(["key", "public", "--secret-file", bad]);
    assertEquals(r.code, 1);
    assertEquals(r.stderr, "error: Secret key is corrupt: expected 'name:base64'\n");
    Deno.writeTextFileSync(bad, "k:AAAA");
    r = await kiln.run(["key", "public", "--secret-file", bad]);
    assertEquals([r.code, r.stderr], [
      1,
      "error: Secret key 'k' is not valid: 3 bytes, expected 64\n",
    ]);
    r = await kiln.run(["key", "public", "--secret-file", join(kiln.root, "missing")]);
    assertEquals(r.code, 1);
    assertStringIncludes(r.stderr, "error: Cannot read secret key file");
    r = await kiln.run([
      "key",
      "generate",
      "k",
      "--secret-file",
      bad,
      "--public-file",
      "/dev/null",
    ]);
    assertEquals(r.code, 1);
    assertStringIncludes(r.stderr, `Key file '${bad}' already exists`);
    const pk = join(kiln.root, "pk");
    Deno.writeTextFileSync(pk, "");
    const sk = join(kiln.root, "sk-new");
    r = await kiln.run(["key", "generate", "k", "--secret-file", sk, "--public-file", pk]);
    assertEquals(r.code, 1);
    assertEquals(Deno.statSync(join(kiln.root)).isDirectory, true);
    assert(![...Deno.readDirSync(kiln.root)].some((e) => e.name === "sk-new"));
    r = await kiln.run(["key", "generate", "k", "--secret-file", sk]);
    assertEquals(r.code, 1);
    assertStringIncludes(r.stderr, "needs --secret-file and --public-file");
    r = await kiln.run([
      "key",
      "generate",
      "a:b",
      "--secret-file",
      sk,
      "--public-file",
      sk + ".pub",
    ]);
    assertEquals([r.code, r.stderr], [1, "error: Key name 'a:b' contains ':' or white space\n"]);
  }));

Deno.test({
  name: "kiln key: Nix signs with kiln's secret key and trusts kiln's public key",
  ignore: !nixAvailable,
  fn: () =>
    withKiln(async (kiln) => {
      const nix = new NixSandbox("sandbox = false\n");
      try {
        const sk = join(kiln.root, "sk");
        const pk = join(kiln.root, "pk");
        await kiln.ok(["key", "generate", "kiln-1", "--secret-file", sk, "--public-file", pk]);
        // an input-addressed path: content-addressed ones need no signature at all
        const drv = (await nix.run("nix-instantiate", [
          "--expr",
          'derivation { name = "signed"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo hi > $out" ]; }',
        ])).trim();
        const path = (await nix.run("nix-store", ["--realise", drv])).trim();
        const publicText = Deno.readTextFileSync(pk);
        // Nix signs with kiln's secret key, in the store and in a cache it writes ...
        await nix.run("nix", ["store", "sign", "-k", sk, path]);
        const cache = `file://${join(nix.root, "cache")}`;
        await nix.run("nix", ["copy", "--to", `${cache}?secret-key=${sk}`, path]);
        // ... and, where paths are not ultimately trusted, accepts them under kiln's public key only
        const verify = (key: string) =>
          nix.runRaw("nix", [
            "store",
            "verify",
            "--store",
            cache,
            "--no-contents",
            "--sigs-needed",
            "1",
            "--option",
            "trusted-public-keys",
            key,
            path,
          ]);
        assertEquals((await verify(publicText)).code, 0);
        const otherKey = "other-1:" + btoa(String.fromCharCode(...new Uint8Array(32)));
        assertEquals((await verify(otherKey)).code !== 0, true);
        const [info] = JSON.parse(await nix.run("nix", ["path-info", "--sigs", "--json", path]));
        const fp = fingerprintPath(path, { ...info, narHash: parseHash(info.narHash) });
        assert(verifySignatures(fp, info.signatures, [parsePublicKey(publicText)]));
        // and kiln reads Nix's keys
        const nixSk = join(nix.root, "nix-sk");
        const nixPk = join(nix.root, "nix-pk");
        await nix.run("nix-store", ["--generate-binary-cache-key", "nix-1", nixSk, nixPk]);
        assertEquals(
          await kiln.ok(["key", "public", "--secret-file", nixSk]),
          Deno.readTextFileSync(nixPk) + "\n",
        );
      } finally {
        nix.cleanup();
      }
    }),
});
