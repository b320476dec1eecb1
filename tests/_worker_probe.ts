/**
 * Run by workers_test.ts from another working directory: one job on each worker module, each
 * checked against the same work done here, with no fallback to the caller's thread allowed.
 * Prints one line per worker; a worker that cannot be found or started makes it fail.
 */

import { concatBytes, hashBytes } from "../lib/hashing/mod.ts";
import { ParallelHasher } from "../lib/store/_parallel_hasher.ts";
import { codeOnWorker, codeWholeOnWorker } from "../lib/substituter/_codec_pool.ts";

function noFallback(): never {
  throw new Error("a codec job ran on the caller's thread: no worker started");
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array<ArrayBuffer>> {
  const all: Uint8Array[] = [];
  for await (const chunk of chunks) all.push(chunk);
  return concatBytes(all) as Uint8Array<ArrayBuffer>;
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

function check(what: string, ok: boolean): void {
  if (!ok) throw new Error(`${what}: wrong result`);
  console.log(`${what}: ok`);
}

const input = new TextEncoder().encode("kiln ".repeat(50_000));

{
  // The thread starts once four slots are queued.
  using hasher = new ParallelHasher("sha256");
  let buffer = hasher.buffer;
  for (let i = 0; i < 5; i++) buffer = hasher.publish(buffer.subarray(0, 1000).fill(i));
  if (!await hasher.threadReady()) throw new Error("the hashing thread did not start");
  const expected = hashBytes(
    "sha256",
    concatBytes([0, 1, 2, 3, 4].map((i) => new Uint8Array(1000).fill(i))),
  );
  check("_hash_worker.ts", hasher.digest().toString() === expected.toString());
}

const zstd = await codeWholeOnWorker("zstd-encode", input.slice(), { level: 3 }, noFallback);
const unzstd = await codeWholeOnWorker(
  "zstd-decode",
  zstd.output!.slice(),
  { maxOutputLength: input.length, hash: "output" },
  noFallback,
);
const xz = await collect(codeOnWorker("xz-encode", once(input), { level: 1 }, noFallback));
const unxz = await collect(codeOnWorker("xz-decode", once(xz), {}, noFallback));
check(
  "_codec_worker.ts",
  unzstd.output!.join() === input.join() &&
    unzstd.sha256!.output.toString() === hashBytes("sha256", input).toString() &&
    unxz.join() === input.join(),
);
