import { assert, assertEquals } from "../_assert.ts";
import { concatBytes, hashBytes, NarWriter } from "../../lib/hashing/mod.ts";
import { ParallelHasher } from "../../lib/store/_parallel_hasher.ts";

const SLOT = 1 << 20;

/**
 * Publishes `pieces` chunks of `size` bytes; after the fifth (the thread has been started after
 * the fourth), waits until the thread is ready for work.
 */
async function publishAll(hasher: ParallelHasher, pieces: number, size: number) {
  const sent: Uint8Array[] = [];
  const lengths: number[] = [];
  let buffer = hasher.buffer;
  for (let i = 0; i < pieces; i++) {
    const chunk = buffer.subarray(0, size).fill(i * 7 + 1);
    sent.push(chunk.slice());
    buffer = hasher.publish(chunk);
    lengths.push(buffer.length);
    if (i === 4) assert(await hasher.threadReady(), "the thread did not start");
  }
  return { sent, lengths };
}

/** The NAR node of a regular file, as NarWriter writes it (without the archive's magic). */
function fileNode(executable: boolean, contents: Uint8Array): Uint8Array {
  const chunks: Uint8Array[] = [];
  const writer = new NarWriter((c) => void chunks.push(c.slice()));
  const magic = writer.size;
  writer.regular(executable, contents.length);
  writer.contents(contents);
  writer.end();
  writer.flush();
  return concatBytes(chunks).subarray(magic);
}

Deno.test("ParallelHasher gives out whole slots unless files were asked for", async () => {
  using hasher = new ParallelHasher("sha256");
  const { sent, lengths } = await publishAll(hasher, 40, 1000);
  assert(!hasher.takesFiles);
  assertEquals(new Set(lengths), new Set([SLOT]));
  assertEquals(hasher.digest().toString(), hashBytes("sha256", concatBytes(sent)).toString());
});

Deno.test("ParallelHasher with files: the thread writes each file's NAR node", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-hasher-" });
  try {
    using hasher = new ParallelHasher("sha256", { files: true });
    const { sent, lengths } = await publishAll(hasher, 8, 1000);
    assert(hasher.takesFiles);
    assert(lengths.at(-1)! < SLOT); // a program's buffer, after its record header
    const expected: Uint8Array[] = [...sent];
    let buffer = hasher.publish(new Uint8Array(0));
    for (let i = 0; i < 50; i++) {
      const bytes = new Uint8Array(5000 + i * 997).fill(i);
      const executable = i % 3 === 0;
      Deno.writeFileSync(`${dir}/f${i}`, bytes, { mode: executable ? 0o755 : 0o644 });
      const between = buffer.subarray(0, 10).fill(200 + i);
      expected.push(between.slice(), fileNode(executable, bytes));
      // Every other file the thread stats itself.
      buffer = hasher.publishFile(
        between,
        `${dir}/f${i}`,
        i % 2 === 0 ? { executable, size: bytes.length } : undefined,
      );
    }
    const nar = concatBytes(expected);
    assertEquals(hasher.digest().toString(), hashBytes("sha256", nar).toString());
    const nodes = expected.slice(sent.length).filter((_, i) => i % 2 === 1);
    assertEquals(hasher.bytesElsewhere, nodes.reduce((n, node) => n + node.length, 0));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("ParallelHasher.threadReady() is false for a thread never started", async () => {
  using hasher = new ParallelHasher("sha256");
  hasher.publish(hasher.buffer.subarray(0, 10).fill(3));
  assertEquals(await hasher.threadReady(), false);
  const expected = hashBytes("sha256", new Uint8Array(10).fill(3));
  assertEquals(hasher.digest().toString(), expected.toString());
});
