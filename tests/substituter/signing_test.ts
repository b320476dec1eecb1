import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { Buffer } from "node:buffer";
import { decodeBase16, encodeBase64, parseHash } from "../../lib/hashing/mod.ts";
import {
  fingerprintPath,
  generateKeyPair,
  parsePublicKey,
  parseSecretKey,
  printPublicKey,
  printSecretKey,
  publicKeyOf,
  signFingerprint,
  verifySignature,
  verifySignatures,
} from "../../lib/substituter/mod.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";

// RFC 8032 section 7.1, test 1: seed, public key, and the signature of the empty message.
const SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const SIGNATURE =
  "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
const RFC_SECRET = `rfc:${encodeBase64(decodeBase16(SEED + PUBLIC))}`;

Deno.test("signFingerprint() matches the RFC 8032 test vector", () => {
  const key = parseSecretKey(RFC_SECRET);
  assertEquals(signFingerprint(key, ""), `rfc:${encodeBase64(decodeBase16(SIGNATURE))}`);
  assertEquals(printPublicKey(publicKeyOf(key)), `rfc:${encodeBase64(decodeBase16(PUBLIC))}`);
});

Deno.test("generateKeyPair() makes keys that print, parse back and sign deterministically", () => {
  const { secretKey, publicKey } = generateKeyPair("cache.example.org-1");
  const secretText = printSecretKey(secretKey);
  assertEquals(printSecretKey(parseSecretKey(secretText + "\n")), secretText);
  assertEquals(
    printPublicKey(parsePublicKey(printPublicKey(publicKey))),
    printPublicKey(publicKey),
  );
  assertEquals(Buffer.from(secretText.split(":")[1], "base64").length, 64);
  const sig = signFingerprint(secretKey, "1;x");
  assertEquals(signFingerprint(secretKey, "1;x"), sig);
  assert(verifySignatures("1;x", [sig], [publicKey]));
  assert(!verifySignatures("1;y", [sig], [publicKey]));
});

Deno.test("verifySignatures() needs one valid signature by a trusted key of the same name", () => {
  const a = generateKeyPair("a");
  const b = generateKeyPair("b");
  const sigA = signFingerprint(a.secretKey, "fp");
  assert(verifySignatures("fp", ["junk", "b:AAAA", sigA], [b.publicKey, a.publicKey]));
  assert(!verifySignatures("fp", [sigA], [b.publicKey]));
  assert(!verifySignatures("fp", [], [a.publicKey]));
  // a key named 'a' whose bytes are b's does not verify a's signature
  assert(!verifySignature("fp", sigA, [{ name: "a", key: b.publicKey.key }]));
  assert(!verifySignature("fp", "a:" + "A".repeat(86) + "==", [a.publicKey]));
  assert(!verifySignature("fp", "a:!!", [a.publicKey]));
});

Deno.test("parseSecretKey() and parsePublicKey() reject bad key text without showing it", () => {
  assertThrows(() => parseSecretKey("nocolon"), SyntaxError, "Secret key is corrupt");
  assertThrows(() => parseSecretKey(":abcd"), SyntaxError, "expected 'name:base64'");
  assertThrows(() => parseSecretKey("k:"), SyntaxError, "expected 'name:base64'");
  assertThrows(() => parseSecretKey("k:not*base64"), SyntaxError, "not valid base64");
  assertThrows(() => parseSecretKey("k:AAAA"), SyntaxError, "3 bytes, expected 64");
  const pub = printPublicKey(generateKeyPair("k").publicKey);
  assertThrows(() => parseSecretKey(pub), SyntaxError, "32 bytes, expected 64");
  assertThrows(() => parsePublicKey(RFC_SECRET), SyntaxError, "64 bytes, expected 32");
  // a secret key whose public half belongs to another seed
  const other = generateKeyPair("k").secretKey;
  const mixed = { ...parseSecretKey(RFC_SECRET), publicKey: other.publicKey };
  const e = assertThrows(
    () => parseSecretKey(printSecretKey(mixed)),
    SyntaxError,
    "does not match",
  );
  assert(!e.message.includes(printSecretKey(mixed).slice(4, 20)));
  assertThrows(() => generateKeyPair("a:b"), SyntaxError, "contains ':'");
  assertThrows(() => generateKeyPair(""), SyntaxError, "empty");
});

Deno.test("fingerprintPath() sorts references and refuses an unknown NAR size", () => {
  const narHash = parseHash("sha256:0jrrkgvrf210ccn7kyf5f8djybm0rygzsxlwalf5dr8njham3g18");
  const fp = fingerprintPath("/nix/store/pw4nsqbc4wg4kgm4cvwqc1y7n4ci64yc-x", {
    narHash,
    narSize: 176,
    references: ["/nix/store/b-2", "/nix/store/a-1"],
  });
  assertEquals(
    fp,
    "1;/nix/store/pw4nsqbc4wg4kgm4cvwqc1y7n4ci64yc-x;sha256:0jrrkgvrf210ccn7kyf5f8djybm0rygzsxlwalf5dr8njham3g18;176;/nix/store/a-1,/nix/store/b-2",
  );
  assertThrows(
    () => fingerprintPath("/nix/store/x", { narHash, narSize: 0, references: [] }),
    RangeError,
    "NAR size is not known",
  );
});

Deno.test({
  name: "signFingerprint() signs exactly as Nix, and verifySignatures() accepts Nix's signature",
  ignore: !nixAvailable,
  async fn() {
    const nix = new NixSandbox();
    try {
      const sk = `${nix.root}/sk`;
      const pk = `${nix.root}/pk`;
      await nix.run("nix-store", ["--generate-binary-cache-key", "nix-test-1", sk, pk]);
      const file = `${nix.root}/f`;
      Deno.writeTextFileSync(file, "signed contents");
      const path = (await nix.run("nix-store", ["--add", file])).trim();
      await nix.run("nix", ["store", "sign", "-k", sk, path]);
      const [info] = JSON.parse(await nix.run("nix", ["path-info", "--sigs", "--json", path]));
      const fp = fingerprintPath(path, {
        narHash: parseHash(info.narHash),
        narSize: info.narSize,
        references: info.references,
      });
      const secret = parseSecretKey(Deno.readTextFileSync(sk));
      assertEquals(info.signatures, [signFingerprint(secret, fp)]);
      const trusted = parsePublicKey(Deno.readTextFileSync(pk));
      assertEquals(printPublicKey(publicKeyOf(secret)), Deno.readTextFileSync(pk));
      assert(verifySignatures(fp, info.signatures, [trusted]));
    } finally {
      nix.cleanup();
    }
  },
});
