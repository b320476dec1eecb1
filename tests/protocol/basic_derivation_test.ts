import { assertEquals, assertThrows } from "../_assert.ts";
import { parseHash } from "../../lib/hashing/mod.ts";
import {
  type BasicDerivation,
  readBasicDerivation,
  WireFormatError,
  WireReader,
  WireWriter,
  writeBasicDerivation,
} from "../../lib/protocol/mod.ts";

const STORE = "/nix/store";
const P = (name: string) => `${STORE}/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-${name}`;
const SHA256 = parseHash("sha256-EMIJ+giQ/gLIWoxmPKjno3zHZrxbGymgzGGyZvZBIdM=");

const DRV: BasicDerivation = {
  name: "x",
  outputs: new Map([
    ["a", { kind: "deferred" }],
    ["b", { kind: "fixed", path: P("x-b"), method: "nar", hash: SHA256 }],
    ["c", { kind: "floating", method: "text", algorithm: "sha256" }],
    ["d", { kind: "impure", method: "flat", algorithm: "sha1" }],
    ["out", { kind: "inputAddressed", path: P("x") }],
  ]),
  inputSrcs: [P("src")],
  system: "x86_64-linux",
  builder: "/bin/sh",
  args: ["-c", "echo"],
  env: new Map([["out", P("x")], ["name", "x"]]),
};

Deno.test("writeBasicDerivation() sends each output kind as Nix's writeDerivation does", () => {
  const writer = new WireWriter();
  writeBasicDerivation(writer, DRV);
  const expected = new WireWriter().writeInt(5);
  for (
    const text of [
      ...["a", "", "", ""],
      ...["b", P("x-b"), "r:sha256", SHA256.toString("base16", false)],
      ...["c", "", "text:sha256", ""],
      ...["d", "", "sha1", "impure"],
      ...["out", P("x"), "", ""],
    ]
  ) expected.writeString(text);
  expected.writeInt(1).writeString(P("src")).writeString("x86_64-linux").writeString("/bin/sh")
    .writeInt(2).writeString("-c").writeString("echo")
    .writeInt(2).writeString("name").writeString("x").writeString("out").writeString(P("x"));
  assertEquals(writer.finish(), expected.finish());
  const reader = new WireReader(writer.finish());
  const back = readBasicDerivation(reader, { storeDir: STORE, name: "x" });
  reader.expectEnd();
  assertEquals(back, { ...DRV, env: new Map([["name", "x"], ["out", P("x")]]) });
});

Deno.test("readBasicDerivation() refuses a hash without algorithm and a fixed output without path", () => {
  for (const [path, algo, hash] of [["", "", "abc"], ["", "sha256", SHA256.toString("base16")]]) {
    const writer = new WireWriter().writeInt(1).writeString("out").writeString(path)
      .writeString(algo).writeString(hash).writeInt(0).writeString("s").writeString("b")
      .writeInt(0).writeInt(0);
    assertThrows(
      () => readBasicDerivation(new WireReader(writer.finish()), { storeDir: STORE, name: "x" }),
      WireFormatError,
    );
  }
});
