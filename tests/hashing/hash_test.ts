import { assertEquals, assertThrows } from "../_assert.ts";
import {
  compressHash,
  decodeNixBase32,
  encodeNixBase32,
  Hash,
  hashBytes,
  parseHash,
  parseHashWithFormat,
} from "../../lib/hashing/mod.ts";

// Vectors printed by `nix-hash --flat --base32 --type T` (Nix 2.8) for "abc" and "".
const VECTORS: [Hash["algorithm"], string, string][] = [
  ["md5", "3jgzhjhz9zjvbb0kyj7jc500ch", "3y8bwfr609h3lh9ch0izcqq7fl"],
  ["sha1", "kpcd173cq987hw957sx6m0868wv3x6d9", "143xibwh31h9bvxzalr0sjvbbvpa6ffs"],
  [
    "sha256",
    "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
    "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73",
  ],
  [
    "sha512",
    "2gs8k559z4rlahfx0y688s49m2vvszylcikrfinm30ly9rak69236nkam5ydvly1ai7xac99vxfc4ii84hawjbk876blyk1jfhkbbyx",
    "0zdl9zrg8r3i9c1g90lgg9ip5ijzv3yhz91i0zzn3r8ap9ws784gkp9dk9j3aglhgf1amqb0pj21mh7h1nxcl18akqvvf7ggqsy30yg",
  ],
];

Deno.test("encodeNixBase32() matches nix-hash for every algorithm", () => {
  for (const [algo, abc, empty] of VECTORS) {
    assertEquals(encodeNixBase32(hashBytes(algo, "abc").bytes), abc);
    assertEquals(encodeNixBase32(hashBytes(algo, "").bytes), empty);
  }
});

Deno.test("decodeNixBase32() inverts encodeNixBase32()", () => {
  for (const [algo, abc] of VECTORS) {
    const bytes = hashBytes(algo, "abc").bytes;
    assertEquals(decodeNixBase32(abc, bytes.length), bytes);
  }
});

Deno.test("decodeNixBase32() rejects forbidden letters and overflow", () => {
  assertThrows(() => decodeNixBase32("e".repeat(52), 32), SyntaxError, "Invalid character 'e'");
  // The top digit of a 32-byte hash carries only one bit: 'z' (31) overflows it.
  assertThrows(() => decodeNixBase32("z" + "0".repeat(51), 32), SyntaxError, "overflows");
  assertThrows(() => decodeNixBase32("0", 32), SyntaxError, "has 1 characters, expected 52");
});

Deno.test("parseHash() reads base16, nix32, base64 and SRI by length", () => {
  const h = hashBytes("sha1", "abc");
  for (const format of ["base16", "nix32", "base64"] as const) {
    const parsed = parseHashWithFormat(h.toString(format, true));
    assertEquals(parsed.format, format);
    assertEquals(parsed.hash.equals(h), true);
    assertEquals(parseHash(h.toString(format), "sha1").equals(h), true);
  }
  assertEquals(parseHashWithFormat(h.toString("sri")).format, "sri");
  assertEquals(parseHash("sha1:VW46M23BIZJ4N8AFRC0FJ19WRP7MJ3C0".toLowerCase()).algorithm, "sha1");
  assertEquals(
    parseHash("800D59CFCD3C05E900CB4E214BE48F6B886A08DF", "sha1").toString("nix32"),
    "vw46m23bizj4n8afrc0fj19wrp7mj3c0",
  );
});

Deno.test("Hash.toString() prints Nix's forms", () => {
  const h = parseHash("sha1:800d59cfcd3c05e900cb4e214be48f6b886a08df");
  assertEquals(h.toString(), "sha1-gA1Zz808BekAy04hS+SPa4hqCN8=");
  assertEquals(h.toString("nix32"), "vw46m23bizj4n8afrc0fj19wrp7mj3c0");
  assertEquals(h.toNix32Prefixed(), "sha1:vw46m23bizj4n8afrc0fj19wrp7mj3c0");
  assertEquals(h.toBase16Prefixed(), "sha1:800d59cfcd3c05e900cb4e214be48f6b886a08df");
  assertEquals(h.toString("base64"), "gA1Zz808BekAy04hS+SPa4hqCN8=");
});

Deno.test("parseHash() rejects malformed text naming it", () => {
  assertThrows(() => parseHash("sha257:abc"), SyntaxError, "Unknown hash algorithm 'sha257'");
  assertThrows(() => parseHash("abcd"), SyntaxError, "does not include a type");
  assertThrows(() => parseHash("sha256:abcd"), SyntaxError, "Invalid sha256 hash 'sha256:abcd'");
  assertThrows(
    () => parseHash("md5:" + "0".repeat(32), "sha1"),
    SyntaxError,
    "should have type 'sha1'",
  );
  assertThrows(() => parseHash("sha1-!!!!"), SyntaxError, "Invalid sha1 hash");
});

Deno.test("compressHash() folds bytes by XOR", () => {
  const h = new Hash("sha256", new Uint8Array(32).map((_, i) => i));
  const folded = compressHash(h, 20);
  assertEquals(folded[0], 0 ^ 20);
  assertEquals(folded[11], 11 ^ 31);
  assertEquals(folded[12], 12);
});
