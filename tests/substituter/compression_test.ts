import { assertEquals, assertRejects, assertThrows } from "../_assert.ts";
import { hashBytes } from "../../lib/hashing/mod.ts";
import {
  compress,
  compressionExtension,
  type CompressionMethod,
  compressNarWhole,
  decompress,
  decompressNarWhole,
  parseCompressionMethod,
  parseWritableCompressionMethod,
  type WritableCompressionMethod,
} from "../../lib/substituter/mod.ts";

/** ~1 MiB that compresses like a NAR: text-like runs mixed with noise. */
const DATA = (() => {
  const out = new Uint8Array(1 << 20);
  let x = 12345;
  for (let i = 0; i < out.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = i % 4096 < 2048 ? 97 + ((i >> 3) % 26) : x >>> 24;
  }
  return out;
})();

/** A stream of `bytes` in small, uneven chunks, so codecs see many writes. */
function streamOf(bytes: Uint8Array, chunk = 40_000): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(controller) {
      if (off >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(off, off + chunk));
      off += chunk;
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

const WRITABLE: WritableCompressionMethod[] = ["none", "xz", "zstd", "gzip", "br"];

function toolAvailable(tool: string): boolean {
  try {
    return new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** Runs `tool args` with `input` on stdin; returns stdout. */
async function pipeTool(tool: string, args: string[], input: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command(tool, { args, stdin: "piped", stdout: "piped" }).spawn();
  const [, out] = await Promise.all([
    streamOf(input).pipeTo(child.stdin),
    child.output(),
  ]);
  if (!out.success) throw new Error(`${tool} ${args.join(" ")} failed`);
  return out.stdout;
}

for (const method of WRITABLE) {
  Deno.test(`compress() and decompress() round-trip ${method}`, async () => {
    const packed = await collect(compress(method, streamOf(DATA)));
    if (method !== "none") assertEquals(packed.length < DATA.length / 2, true);
    assertEquals(await collect(decompress(method, streamOf(packed, 999))), DATA);
  });
}

Deno.test("compressNarWhole() gives zstd and the sha256 of both sides, hashed on a worker", async () => {
  const whole = await compressNarWhole(DATA.slice(), { level: 5 });
  assertEquals(whole.narHash.toString(), hashBytes("sha256", DATA).toString());
  assertEquals(whole.fileHash.toString(), hashBytes("sha256", whole.compressed!).toString());
  assertEquals(whole.size, whole.compressed!.length);
  assertEquals(await collect(decompress("zstd", streamOf(whole.compressed!))), DATA);
  // Written to a new file by the worker instead: the same bytes, twice over one reused buffer.
  const dir = Deno.makeTempDirSync();
  try {
    for (const name of ["a.zst", "b.zst"]) {
      const file = `${dir}/${name}`;
      const written = await compressNarWhole(DATA.slice(), { level: 5, writeTo: file });
      assertEquals(written.compressed, undefined);
      assertEquals(written.buffer?.byteLength, DATA.length, "the NAR's buffer comes back");
      assertEquals(Deno.readFileSync(file), whole.compressed);
      assertEquals([written.size, written.fileHash.toString()], [
        whole.size,
        whole.fileHash.toString(),
      ]);
    }
    await assertRejects(() => compressNarWhole(DATA.slice(), { writeTo: `${dir}/a.zst` }));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  await assertRejects(
    () => compressNarWhole(DATA.slice(), { level: 20 }),
    RangeError,
    "out of range",
  );
});

/** Whether libzstd loads here (then the codec workers use it; its errors are the strict ones). */
const LIBZSTD = (() => {
  try {
    Deno.dlopen("libzstd.so.1", {}).close();
    return true;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "decompressNarWhole() decodes and hashes a zstd NAR, and names what is wrong with one",
  ignore: !LIBZSTD,
}, async () => {
  const compressed = (await compressNarWhole(DATA.slice())).compressed!;
  const whole = await decompressNarWhole(compressed.slice(), DATA.length);
  assertEquals(whole.nar, DATA);
  assertEquals(whole.narHash.toString(), hashBytes("sha256", DATA).toString());
  const bad: [Uint8Array, number, string][] = [
    [compressed.slice(0, -7), DATA.length, "Cannot decompress zstd data: data is truncated"],
    [compressed, DATA.length - 1, `the NAR is larger than its NarSize ${DATA.length - 1}`],
    [new Uint8Array([...compressed, 1, 2, 3, 4, 5, 6, 7, 8]), DATA.length, "Cannot decompress"],
    [new TextEncoder().encode("not zstd at all"), DATA.length, "Cannot decompress zstd data"],
  ];
  for (const [packed, narSize, message] of bad) {
    await assertRejects(
      () => decompressNarWhole(packed.slice(), narSize),
      SyntaxError,
      message,
    );
  }
  const flipped = compressed.slice();
  flipped[flipped.length >> 1] ^= 0x55;
  const damaged = await decompressNarWhole(flipped, DATA.length).catch((e) => e);
  // zstd without a checksum may decode a flipped literal into other bytes: the hash shows it.
  if (!(damaged instanceof SyntaxError)) {
    assertEquals(damaged.narHash.equals(whole.narHash), false);
  }
});

Deno.test("compress() honours a level and rejects one out of range", async () => {
  const fast = await collect(compress("xz", streamOf(DATA), { level: 0 }));
  assertEquals(await collect(decompress("xz", streamOf(fast))), DATA);
  assertThrows(() => compress("zstd", streamOf(DATA), { level: 20 }), RangeError, "1-19");
  assertThrows(() => compress("xz", streamOf(DATA), { level: 1.5 }), RangeError, "xz (0-9)");
});

const TOOLS: [CompressionMethod, string][] = [
  ["xz", "xz"],
  ["zstd", "zstd"],
  ["bzip2", "bzip2"],
  ["gzip", "gzip"],
];

for (const [method, tool] of TOOLS) {
  Deno.test({
    name: `decompress() reads what the ${tool} tool writes, and rejects it damaged`,
    ignore: !toolAvailable(tool),
    async fn() {
      const packed = await pipeTool(tool, ["-c"], DATA);
      assertEquals(await collect(decompress(method, streamOf(packed))), DATA);
      const truncated = packed.slice(0, packed.length - 7);
      await assertRejects(
        () => collect(decompress(method, streamOf(truncated))),
        SyntaxError,
        `Cannot decompress ${method} data: `,
      );
      const trailing = new Uint8Array([...packed, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      await assertRejects(() => collect(decompress(method, streamOf(trailing))), SyntaxError);
    },
  });
}

Deno.test({
  name: "decompress() reads concatenated xz streams, as the xz tool writes them",
  ignore: !toolAvailable("xz"),
  async fn() {
    const half = DATA.length / 2;
    const a = await pipeTool("xz", ["-c"], DATA.subarray(0, half));
    const b = await pipeTool("xz", ["-c"], DATA.subarray(half));
    assertEquals(await collect(decompress("xz", streamOf(new Uint8Array([...a, ...b])))), DATA);
  },
});

for (const [method, tool] of TOOLS.filter(([m]) => m !== "bzip2")) {
  Deno.test({
    name: `the ${tool} tool reads what compress() writes with ${method}`,
    ignore: !toolAvailable(tool),
    async fn() {
      const packed = await collect(compress(method as WritableCompressionMethod, streamOf(DATA)));
      assertEquals(await pipeTool(tool, ["-d", "-c"], packed), DATA);
    },
  });
}

Deno.test({
  name: "compress() zstd: inputs taken whole (on a worker) and streamed give one frame each",
  ignore: !toolAvailable("zstd"),
  async fn() {
    // Past 8 MiB the input is streamed through the caller's thread instead of taken whole.
    const large = new Uint8Array(9 * DATA.length + 1);
    for (let i = 0; i < 9; i++) large.set(DATA, i * DATA.length);
    for (const input of [DATA, large]) {
      const packed = await collect(compress("zstd", streamOf(input, 1 << 20)));
      assertEquals(await pipeTool("zstd", ["-d", "-c"], packed), input);
      assertEquals(await collect(decompress("zstd", streamOf(packed))), input);
    }
  },
});

Deno.test("decompress() rejects empty, foreign and corrupt input with a SyntaxError", async () => {
  for (const method of ["xz", "zstd", "bzip2", "gzip", "br"] as const) {
    await assertRejects(
      () => collect(decompress(method, streamOf(new Uint8Array(0)))),
      SyntaxError,
      `Cannot decompress ${method} data: the input is empty`,
    );
  }
  const text = new TextEncoder().encode("this is not compressed at all, not even a little");
  for (const method of ["xz", "zstd", "bzip2", "gzip"] as const) {
    await assertRejects(() => collect(decompress(method, streamOf(text))), SyntaxError);
  }
  const xz = await collect(compress("xz", streamOf(DATA)));
  xz[xz.length >> 1] ^= 0x55;
  await assertRejects(() => collect(decompress("xz", streamOf(xz))), SyntaxError, "corrupt");
});

Deno.test("decompress() lets a consumer stop early", async () => {
  const packed = await collect(compress("zstd", streamOf(DATA)));
  const reader = decompress("zstd", streamOf(packed, 1000)).getReader();
  const first = await reader.read();
  assertEquals(first.done, false);
  await reader.cancel();
});

Deno.test("parseCompressionMethod() knows Nix's names and the extensions it gives them", () => {
  assertEquals(parseCompressionMethod("bzip2"), "bzip2");
  assertThrows(
    () => parseCompressionMethod("lz4"),
    SyntaxError,
    "Unsupported compression method 'lz4'",
  );
  assertThrows(() => parseWritableCompressionMethod("bzip2"), SyntaxError, "cannot write");
  const exts = (["none", "xz", "bzip2", "zstd", "gzip", "br"] as const).map(compressionExtension);
  assertEquals(exts, ["", ".xz", ".bz2", ".zst", "", ".br"]);
});

Deno.test("decompress() lets a consumer stop an xz stream early", async () => {
  const packed = await collect(compress("xz", streamOf(DATA)));
  const reader = decompress("xz", streamOf(packed, 1000)).getReader();
  assertEquals((await reader.read()).done, false);
  await reader.cancel();
  // The worker dropped the job: the next one still runs.
  assertEquals(await collect(decompress("xz", streamOf(packed))), DATA);
});
