import { assert, assertEquals } from "../_assert.ts";
import { concatBytes, hashBytes } from "../../lib/hashing/mod.ts";
import { ParallelHasher } from "../../lib/store/_parallel_hasher.ts";

const SLOT = 1 << 20;

/** Publishes `pieces` chunks of `size` bytes, pausing after the fourth (the thread starts). */
async function publishAll(hasher: ParallelHasher, pieces: number, size: number) {
  const sent: Uint8Array[] = [];
  const lengths: number[] = [];
  let buffer = hasher.buffer;
  for (let i = 0; i < pieces; i++) {
    const chunk = buffer.subarray(0, size).fill(i * 7 + 1);
    sent.push(chunk.slice());
    buffer = hasher.publish(chunk);
    lengths.push(buffer.length);
    if (i === 4) await new Promise((resolve) => setTimeout(resolve, 300));
  }
  return { sent, lengths };
}

Deno.test("ParallelHasher gives out whole slots unless files were asked for", async () => {
  using hasher = new ParallelHasher("sha256");
  const { sent, lengths } = await publishAll(hasher, 40, 1000);
  assert(!hasher.takesFiles);
  assertEquals(new Set(lengths), new Set([SLOT]));
  assertEquals(hasher.digest().toString(), hashBytes("sha256", concatBytes(sent)).toString());
});

Deno.test("ParallelHasher with files: slots become programs of bytes and files", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-hasher-" });
  try {
    using hasher = new ParallelHasher("sha256", { files: true });
    const { sent, lengths } = await publishAll(hasher, 8, 1000);
    assert(hasher.takesFiles, "the thread did not start");
    assert(lengths.at(-1)! < SLOT); // a program's buffer, after its record header
    const files: Uint8Array[] = [];
    for (let i = 0; i < 50; i++) {
      const bytes = new Uint8Array(5000 + i * 997).fill(i);
      Deno.writeFileSync(`${dir}/f${i}`, bytes);
      const buffer = hasher.publishFile(`${dir}/f${i}`, bytes.length);
      files.push(bytes);
      const between = buffer.subarray(0, 10).fill(200 + i);
      hasher.publish(between); // the buffer it gives next stays empty: a file comes next
      files.push(between.slice());
    }
    const expected = hashBytes("sha256", concatBytes([...sent, ...files]));
    assertEquals(hasher.digest().toString(), expected.toString());
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
