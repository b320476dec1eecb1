import { assert, assertEquals, assertThrows } from "../_assert.ts";
import {
  encodeFramed,
  FramedDecoder,
  WireFormatError,
  WireWriter,
} from "../../lib/protocol/mod.ts";
import { seededRandom } from "./_random.ts";
import { concatBytes } from "../../lib/hashing/mod.ts";

Deno.test("encodeFramed() writes u64 lengths, unpadded chunks and an empty end frame", () => {
  const framed = encodeFramed(new TextEncoder().encode("hello"), 3);
  const expected = new WireWriter().writeInt(3).writeRaw(new TextEncoder().encode("hel"))
    .writeInt(2).writeRaw(new TextEncoder().encode("lo")).writeInt(0).finish();
  assertEquals(framed, expected);
  assertEquals(encodeFramed(new Uint8Array()), new Uint8Array(8));
});

Deno.test("FramedDecoder gives the payload back whatever way the input is split", () => {
  const random = seededRandom(7);
  const payload = new Uint8Array(5000).map(() => Math.floor(random() * 256));
  const trailer = new Uint8Array([1, 2, 3]);
  for (let round = 0; round < 50; round++) {
    const input = concatBytes([encodeFramed(payload, 1 + Math.floor(random() * 700)), trailer]);
    const decoder = new FramedDecoder();
    const data: Uint8Array[] = [];
    let rest: Uint8Array = new Uint8Array();
    for (let at = 0; at < input.length;) {
      const step = 1 + Math.floor(random() * 40);
      const result = decoder.push(input.subarray(at, at + step));
      data.push(...result.data);
      if (result.done) rest = concatBytes([result.rest, input.subarray(at + step)]);
      at += step;
      if (result.done) break;
    }
    decoder.finish();
    assertEquals(concatBytes(data), payload);
    assertEquals(rest, trailer);
  }
});

Deno.test("FramedDecoder.finish() reports framed data that ends without its end frame", () => {
  const framed = encodeFramed(new Uint8Array(20), 8);
  for (let cut = 0; cut < framed.length; cut++) {
    const decoder = new FramedDecoder();
    decoder.push(framed.subarray(0, cut));
    assertThrows(() => decoder.finish(), WireFormatError, "no end frame");
  }
});

Deno.test("FramedDecoder refuses a frame longer than its limit, naming where it starts", () => {
  const decoder = new FramedDecoder(16);
  const input = concatBytes([
    encodeFramed(new Uint8Array(16), 16).subarray(0, 24),
    new WireWriter().writeInt(17).finish(),
  ]);
  const error = assertThrows(() => decoder.push(input), WireFormatError, "Frame length 17");
  assertEquals((error as WireFormatError).offset, 24);
  assert(!decoder.done);
});
