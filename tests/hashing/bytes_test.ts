import { decodeNixString, encodeNixString, isUtf8Text } from "../../lib/hashing/mod.ts";
import { assert, assertEquals } from "../_assert.ts";

Deno.test("decodeNixString() keeps bytes that are not UTF-8 and encodeNixString() restores them", () => {
  const cases = [
    [0x61, 0xc3], // é cut after its first byte
    [0xf0, 0x9f, 0x98, 0x22], // 😀 cut before a quote
    [0xed, 0xa0, 0x80], // an encoded surrogate (CESU-8)
    [0xc0, 0xaf, 0xff, 0xfe, 0x80], // overlong and never-valid bytes
    [0xe2, 0x82, 0xac, 0xf0, 0x9d, 0x84, 0x9e, 0x7f], // valid: € 𝄞 DEL
    [0xef, 0xbb, 0xbf, 0x41], // a BOM is content too
  ];
  for (const bytes of cases.map((c) => new Uint8Array(c))) {
    const text = decodeNixString(bytes);
    assertEquals(encodeNixString(text), bytes);
    const valid = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    let utf8 = true;
    try {
      valid.decode(bytes);
    } catch {
      utf8 = false;
    }
    assertEquals(isUtf8Text(text), utf8);
  }
  assertEquals(decodeNixString(new Uint8Array([0x61, 0xc3])), "a\udcc3");
  assert(isUtf8Text("é😀"));
});
