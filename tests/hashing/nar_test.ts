import { assert, assertEquals, assertRejects } from "../_assert.ts";
import {
  type NarEvent,
  NarSyntaxError,
  NarWriter,
  paddedLength,
  parseNar,
  sortNames,
} from "../../lib/hashing/mod.ts";
import {
  chunked,
  directoryNar,
  fileEntry,
  narBytes,
  narToken,
  patternBytes,
  regularNode,
} from "../store/_nar_fixture.ts";

/** Writes a small tree through a NarWriter with `buffer`, collecting the output. */
function writeSample(buffer?: Uint8Array): Uint8Array {
  const chunks: Uint8Array[] = [];
  const w = new NarWriter((c) => void chunks.push(c.slice()), { buffer });
  w.directory();
  w.entry("big");
  const big = patternBytes(20_000);
  w.regular(false, big.length);
  w.contents(big);
  w.end();
  w.end();
  w.entry("exe");
  w.regular(true, 3);
  w.contentsInPlace(3).set([1, 2, 3]);
  w.end();
  w.end();
  w.entry("link");
  w.symlink("t".repeat(4095));
  w.end();
  w.end();
  w.flush();
  return narBytes(...chunks);
}

const SAMPLE_TOKENS = [
  "nix-archive-1",
  "(",
  "type",
  "directory",
  ...["entry", "(", "name", "big", "node", "(", "type", "regular", "contents"],
  patternBytes(20_000),
  ...[")", ")"],
  ...["entry", "(", "name", "exe", "node", "(", "type", "regular", "executable", ""],
  ...["contents", new Uint8Array([1, 2, 3]), ")", ")"],
  ...["entry", "(", "name", "link", "node", "(", "type", "symlink", "target", "t".repeat(4095)],
  ...[")", ")", ")"],
].map((t) => narToken(t));

async function collect(bytes: Uint8Array, chunkSize = 1 << 16): Promise<NarEvent[]> {
  const events: NarEvent[] = [];
  for await (const e of parseNar(chunked(bytes, chunkSize))) {
    events.push(e.type === "contents" ? { type: "contents", chunk: e.chunk.slice() } : e);
  }
  return events;
}

Deno.test("NarWriter writes the NAR grammar token by token", () => {
  assertEquals(writeSample(), narBytes(...SAMPLE_TOKENS));
});

Deno.test("NarWriter gives the same bytes through a small buffer", () => {
  const small = writeSample(new Uint8Array(8192));
  assertEquals(small, writeSample());
});

Deno.test("NarWriter hands the sink's returned buffer back out", () => {
  const buffers = [new Uint8Array(8192), new Uint8Array(8192), new Uint8Array(8192)];
  const out: Uint8Array[] = [];
  let next = 1;
  const w = new NarWriter((c) => {
    assert(c.buffer === buffers[(next - 1) % 3].buffer, "chunk is the buffer given out last");
    out.push(c.slice());
    return buffers[next++ % 3];
  }, { buffer: buffers[0] });
  w.regular(false, 30_000);
  w.contents(patternBytes(30_000));
  w.end();
  w.flush();
  assert(next > 3);
  const expected = narBytes("nix-archive-1", "(", "type", "regular", "contents");
  assertEquals(narBytes(...out), narBytes(expected, narToken(patternBytes(30_000)), ")"));
});

Deno.test("parseNar() yields nodes in order with their contents, across chunk boundaries", async () => {
  for (const size of [1, 7, 4096]) {
    const events = await collect(writeSample(), size);
    const nodes = events.filter((e) => e.type !== "contents");
    assertEquals(nodes, [
      { type: "directory", path: "" },
      { type: "regular", path: "big", executable: false, size: 20_000, narOffset: 232 },
      { type: "regular", path: "exe", executable: true, size: 3, narOffset: 20_448 },
      { type: "symlink", path: "link", target: "t".repeat(4095) },
    ]);
    const contents = events.filter((e) => e.type === "contents").map((e) => e.chunk);
    assertEquals(narBytes(...contents), narBytes(patternBytes(20_000), new Uint8Array([1, 2, 3])));
  }
});

Deno.test("parseNar() accepts a lone regular file and an empty directory", async () => {
  assertEquals(await collect(narBytes("nix-archive-1", ...regularNode(""))), [
    { type: "regular", path: "", executable: false, size: 0, narOffset: 96 },
  ]);
  assertEquals(await collect(directoryNar()), [{ type: "directory", path: "" }]);
});

Deno.test("parseNar() orders names by UTF-8 bytes, not UTF-16 code units", async () => {
  const sorted = directoryNar(fileEntry("\uFFFD"), fileEntry("\u{1F600}"));
  assertEquals((await collect(sorted)).filter((e) => e.type === "regular").map((e) => e.path), [
    "\uFFFD",
    "\u{1F600}",
  ]);
  await assertRejects(
    () => collect(directoryNar(fileEntry("\u{1F600}"), fileEntry("\uFFFD"))),
    NarSyntaxError,
    "not sorted",
  );
});

Deno.test("sortNames() sorts byte-wise by UTF-8", () => {
  assertEquals(sortNames(["\u{1F600}", "\uFFFD", "a", "B", "\uE000", "ab"]), [
    "B",
    "a",
    "ab",
    "\uE000",
    "\uFFFD",
    "\u{1F600}",
  ]);
});

/** Each bad NAR, and a fragment of the message it must give. */
const BAD: [string, Uint8Array, string][] = [
  ["bad magic", narBytes("nix-archive-2", ...regularNode("")), "not a Nix archive"],
  ["empty input", new Uint8Array(0), "not a Nix archive"],
  ["garbage", patternBytes(300), "not a Nix archive"],
  ["empty name", directoryNar(fileEntry("")), "invalid file name ''"],
  ["name '.'", directoryNar(fileEntry(".")), "invalid file name '.'"],
  ["name '..'", directoryNar(fileEntry("..")), "invalid file name '..'"],
  ["name with '/'", directoryNar(fileEntry("a/b")), "invalid file name 'a/b'"],
  ["name with NUL", directoryNar(fileEntry("a\0b")), "invalid file name"],
  ["name not UTF-8", directoryNar(fileEntry(new Uint8Array([0xff, 0x41]))), "not valid UTF-8"],
  ["duplicate", directoryNar(fileEntry("a"), fileEntry("a")), "duplicate entry 'a'"],
  ["unsorted", directoryNar(fileEntry("b"), fileEntry("a")), "not sorted: 'a' after 'b'"],
  [
    "token padding",
    narBytes("nix-archive-1", "(", "type", narToken("regular", 1), "contents", "", ")"),
    "tag has non-zero padding",
  ],
  [
    "contents padding",
    narBytes("nix-archive-1", "(", "type", "regular", "contents", narToken("abc", 7), ")"),
    "contents have non-zero padding",
  ],
  ["trailing data", narBytes("nix-archive-1", ...regularNode("x"), "more"), "Trailing data"],
  ["unknown type", narBytes("nix-archive-1", "(", "type", "fifo", ")"), "tag 'fifo'"],
  [
    "unknown directory tag",
    narBytes("nix-archive-1", "(", "type", "directory", "junk", ")"),
    "tag 'junk' (expected 'entry' or ')')",
  ],
  [
    "executable marker with a value",
    narBytes("nix-archive-1", "(", "type", "regular", "executable", "yes", "contents", "", ")"),
    "executable marker has a non-empty value",
  ],
  [
    "contents before executable",
    narBytes("nix-archive-1", "(", "type", "regular", "contents", "", "executable", "", ")"),
    "tag 'executable' (expected ')')",
  ],
  [
    "empty symlink target",
    narBytes("nix-archive-1", "(", "type", "symlink", "target", "", ")"),
    "invalid target",
  ],
  [
    "symlink target over 4095 bytes",
    narBytes("nix-archive-1", "(", "type", "symlink", "target", "t".repeat(4096), ")"),
    "symlink target is too long",
  ],
  [
    "huge tag length",
    narBytes("nix-archive-1", new Uint8Array([1, 0, 0, 0, 0, 0, 0, 1])),
    "tag is too long",
  ],
  [
    "missing close of an entry",
    narBytes("nix-archive-1", "(", "type", "directory", "entry", "(", "name", "a", "node"),
    "truncated",
  ],
];

for (const [what, bytes, message] of BAD) {
  Deno.test(`parseNar() rejects ${what}`, async () => {
    const e = await assertRejects(() => collect(bytes, 5), NarSyntaxError, message);
    assert(!e.message.includes("\n"), "one line");
    assert(/\(NAR byte \d+\)$/.test(e.message), e.message);
  });
}

Deno.test("parseNar() rejects every truncation of a valid NAR", async () => {
  const whole = writeSample();
  for (let n = 0; n < whole.length; n += n < 400 ? 1 : 997) {
    await assertRejects(() => collect(whole.subarray(0, n), 64), NarSyntaxError);
  }
});

Deno.test("parseNar() stops reading its source after an error", async () => {
  let cancelled = false;
  const bad = directoryNar(fileEntry("b"), fileEntry("a"));
  const source = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(bad);
    },
    cancel() {
      cancelled = true;
    },
  });
  await assertRejects(async () => {
    for await (const _ of parseNar(source)) { /* drain */ }
  }, NarSyntaxError);
  assert(cancelled, "source cancelled");
});

Deno.test("paddedLength() rounds up to 8 bytes past 2 GiB and 4 GiB", () => {
  assertEquals([0, 1, 7, 8, 9].map(paddedLength), [0, 8, 8, 8, 16]);
  assertEquals(paddedLength(3 * 2 ** 30 + 1), 3 * 2 ** 30 + 8);
  assertEquals(paddedLength(2 ** 40 + 3), 2 ** 40 + 8);
});
