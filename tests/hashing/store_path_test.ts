import { assertEquals, assertThrows } from "../_assert.ts";
import {
  encodeNixBase32,
  hashBytes,
  makeFixedOutputPath,
  makeOutputPath,
  makeTextPath,
  parseHash,
  parseStorePath,
  renderContentAddress,
  validateStorePathName,
} from "../../lib/hashing/mod.ts";

const NAR_HASH = parseHash(
  "sha256:894517c9163c896ec31a2adbd33c0681fd5f45b2c0ef08a64c92a03fb97f390f",
);

Deno.test("makeFixedOutputPath() gives the reference's source path for NAR sha256", () => {
  assertEquals(
    makeFixedOutputPath("/nix/store", { method: "nar", hash: NAR_HASH, name: "source" }),
    "/nix/store/i00sflxqsj37lfmf95m8mn0grv615hpj-source",
  );
});

Deno.test("makeFixedOutputPath() refuses references outside NAR sha256", () => {
  assertThrows(
    () =>
      makeFixedOutputPath("/nix/store", {
        method: "flat",
        hash: NAR_HASH,
        name: "x",
        references: ["/nix/store/i00sflxqsj37lfmf95m8mn0grv615hpj-source"],
      }),
    TypeError,
    "cannot have references",
  );
});

Deno.test("makeOutputPath() names non-out outputs with a suffix", () => {
  const h = hashBytes("sha256", "x");
  const out = makeOutputPath("/nix/store", "out", h, "hello");
  const dev = makeOutputPath("/nix/store", "dev", h, "hello");
  assertEquals(out.endsWith("-hello"), true);
  assertEquals(dev.endsWith("-hello-dev"), true);
});

Deno.test("makeTextPath() sorts references", () => {
  const h = hashBytes("sha256", "contents");
  const a = "/nix/store/00000000000000000000000000000000-a";
  const b = "/nix/store/11111111111111111111111111111111-b";
  assertEquals(
    makeTextPath("/nix/store", h, "x", [b, a]),
    makeTextPath("/nix/store", h, "x", [a, b]),
  );
});

Deno.test("the output placeholder hash matches the reference", () => {
  assertEquals(
    encodeNixBase32(hashBytes("sha256", "nix-output:out").bytes),
    "1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9",
  );
});

Deno.test("validateStorePathName() rejects bad names naming them", () => {
  assertThrows(() => validateStorePathName(""), SyntaxError, "empty");
  assertThrows(() => validateStorePathName("a b"), SyntaxError, "forbidden character ' '");
  assertThrows(() => validateStorePathName("x".repeat(212)), SyntaxError, "longer than 211");
  validateStorePathName("x".repeat(211));
  validateStorePathName("a+-._?=Z9");
});

Deno.test("parseStorePath() splits and validates", () => {
  assertEquals(parseStorePath("/nix/store", "/nix/store/i00sflxqsj37lfmf95m8mn0grv615hpj-source"), {
    hashPart: "i00sflxqsj37lfmf95m8mn0grv615hpj",
    name: "source",
  });
  assertThrows(
    () => parseStorePath("/nix/store", "/nix/store/e00sflxqsj37lfmf95m8mn0grv615hpj-source"),
    SyntaxError,
    "invalid hash part",
  );
  assertThrows(() => parseStorePath("/nix/store", "/tmp/x"), SyntaxError, "not a store path");
  assertThrows(
    () => parseStorePath("/nix/store", "/nix/store/i00sflxqsj37lfmf95m8mn0grv615hpj-source/bin"),
    SyntaxError,
    "not a store path",
  );
});

Deno.test("renderContentAddress() prints Nix's ca column forms", () => {
  assertEquals(
    renderContentAddress("nar", NAR_HASH),
    "fixed:r:sha256:" + NAR_HASH.toString("nix32"),
  );
  assertEquals(
    renderContentAddress("flat", NAR_HASH),
    "fixed:sha256:" + NAR_HASH.toString("nix32"),
  );
  assertEquals(renderContentAddress("text", NAR_HASH), "text:sha256:" + NAR_HASH.toString("nix32"));
});
