import { assertEquals, assertRejects } from "../_assert.ts";
import { concatBytes } from "../../lib/hashing/mod.ts";
import { createXzDecoder, createXzEncoder } from "../../lib/substituter/_xz.ts";

// The caller's-thread coders, which compression.ts falls back to when no worker starts; the
// workers run the same XzCoder (compression_test.ts goes through them).

const DATA = new TextEncoder().encode(
  Array.from({ length: 20_000 }, (_, i) => `line ${i} ${i * 7919 % 1000}`).join("\n"),
);

async function through(
  codec: TransformStream<Uint8Array, Uint8Array>,
  bytes: Uint8Array,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const input = ReadableStream.from([bytes.subarray(0, 1000), bytes.subarray(1000)]);
  for await (const chunk of input.pipeThrough(codec)) chunks.push(chunk);
  return concatBytes(chunks);
}

Deno.test("createXzEncoder() and createXzDecoder() round-trip on the caller's thread", async () => {
  const packed = await through(createXzEncoder(1), DATA);
  assertEquals(packed.subarray(0, 6), new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]));
  assertEquals(await through(createXzDecoder(), packed), DATA);
  // Two streams one after the other, as `xz` may write them.
  const twice = concatBytes([packed, packed]);
  assertEquals(await through(createXzDecoder(), twice), concatBytes([DATA, DATA]));
});

Deno.test("createXzDecoder() names truncated, corrupt and foreign input", async () => {
  const packed = await through(createXzEncoder(1), DATA);
  const cut = packed.subarray(0, packed.length - 10);
  await assertRejects(() => through(createXzDecoder(), cut), Error, "data is truncated");
  const corrupt = packed.slice();
  corrupt[corrupt.length >> 1] ^= 0x55;
  await assertRejects(() => through(createXzDecoder(), corrupt), Error, "corrupt");
  await assertRejects(() => through(createXzDecoder(), DATA), Error, "format not recognized");
});
