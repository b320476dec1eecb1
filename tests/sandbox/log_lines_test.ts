import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import {
  filterAnsiEscapes,
  formatLogTail,
  LogLineSplitter,
  LogTail,
  openCompressedLog,
  pumpBuildLog,
  splitLogLines,
  writeEmptyLog,
} from "../../lib/sandbox/mod.ts";
import { assertEquals } from "../_assert.ts";

const enc = (s: string) => new TextEncoder().encode(s);

function streamOf(...chunks: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks.map((c) => typeof c === "string" ? enc(c) : c));
}

Deno.test("LogLineSplitter overwrites from the line start after \\r, as Nix 2.8 does", () => {
  const s = new LogLineSplitter();
  assertEquals(s.push(enc("abc\rX\n")), ["Xbc"]);
  assertEquals(s.push(enc("progress 10%\rprogress 100%\n")), ["progress 100%"]);
  assertEquals(s.push(enc("crlf\r\n\n")), ["crlf", ""]);
  assertEquals(s.push(enc("tail\r")), []);
  assertEquals(s.flush(), ["tail"]);
  assertEquals(s.flush(), []);
});

Deno.test("LogLineSplitter decodes UTF-8 split across chunks and long lines", () => {
  const s = new LogLineSplitter();
  const bytes = enc("héllo ✓\n");
  assertEquals(s.push(bytes.subarray(0, 2)), []);
  assertEquals(s.push(bytes.subarray(2, 8)), []);
  assertEquals(s.push(bytes.subarray(8)), ["héllo ✓"]);
  const long = "x".repeat(10_000);
  assertEquals(s.push(enc(long + "\n")), [long]);
});

Deno.test("splitLogLines() streams lines and flushes the last one at EOF", async () => {
  const lines = await Array.fromAsync(streamOf("a\nb", "c\n", "d").pipeThrough(splitLogLines()));
  assertEquals(lines, ["a", "bc", "d"]);
});

Deno.test("LogTail keeps the last lines and formatLogTail() prints them as Nix does", () => {
  const tail = new LogTail(2);
  for (const line of ["1", "2", "3"]) tail.push(line);
  assertEquals(tail.lines, ["2", "3"]);
  assertEquals(formatLogTail(tail.lines), "last 2 log lines:\n> 2\n> 3\n");
  assertEquals(formatLogTail([]), "");
  const none = new LogTail(0);
  none.push("x");
  assertEquals(none.lines, []);
});

Deno.test("filterAnsiEscapes() keeps colours, drops other escapes, expands tabs", () => {
  const red = "\x1b[31m";
  const reset = "\x1b[0m";
  assertEquals(filterAnsiEscapes(`${red}error${reset}\x1b[2K\x1bM!`), `${red}error${reset}!`);
  assertEquals(filterAnsiEscapes(`${red}error${reset}`, { filterAll: true }), "error");
  assertEquals(filterAnsiEscapes("a\tb\r\x07c"), "a       bc");
  assertEquals(filterAnsiEscapes(`${red}✓✓✓✓`, { width: 2 }), `${red}✓✓`);
  assertEquals(filterAnsiEscapes("ab\tc", { width: 5 }), "ab   ");
});

Deno.test("pumpBuildLog() writes the compressed log and feeds the tail and the printer", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = join(dir, "drvs", "ab", "cdef-x.drv.gz");
    const seen: string[] = [];
    let chunks = 0;
    const summary = await pumpBuildLog(streamOf("one\ntw", "o\r2\nthree"), {
      logLines: 2,
      logFile: await openCompressedLog(path),
      onLine: (l) => seen.push(l),
      onChunk: () => chunks++,
    });
    assertEquals(summary, { bytes: 15, tail: ["2wo", "three"], limitExceeded: false });
    assertEquals(seen, ["one", "2wo", "three"]);
    assertEquals(chunks, 2);
    assertEquals(
      new TextDecoder().decode(gunzipSync(Deno.readFileSync(path))),
      "one\ntwo\r2\nthree",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("openCompressedLog() with defer hands a small log's write over instead of waiting", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = join(dir, "drvs", "ab", "small.drv.gz");
    const writes: Promise<void>[] = [];
    const log = await openCompressedLog(path, { defer: (write) => writes.push(write) });
    await pumpBuildLog(streamOf("done\n"), { logLines: 1, logFile: log });
    assertEquals(writes.length, 1);
    await writes[0];
    assertEquals(new TextDecoder().decode(gunzipSync(Deno.readFileSync(path))), "done\n");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("openCompressedLog() leaves no file for a silent builder, and none from before", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = join(dir, "silent.drv.gz");
    await pumpBuildLog(streamOf("earlier\n"), {
      logLines: 1,
      logFile: await openCompressedLog(path),
    });
    assertEquals(new TextDecoder().decode(gunzipSync(Deno.readFileSync(path))), "earlier\n");
    await pumpBuildLog(streamOf(""), { logLines: 1, logFile: await openCompressedLog(path) });
    assertEquals(Deno.readDirSync(dir).toArray(), []);
    await pumpBuildLog(streamOf(""), { logLines: 1, logFile: await openCompressedLog(path) });
    assertEquals(Deno.readDirSync(dir).toArray(), []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("writeEmptyLog() writes a failed silent builder's log as a gzip file of nothing", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = join(dir, "xy", "silent.drv.gz");
    await writeEmptyLog(path);
    assertEquals(gunzipSync(Deno.readFileSync(path)).length, 0);
    const gzip = new Deno.Command("gzip", { args: ["-t", path] }).outputSync();
    assertEquals(gzip.success, true, new TextDecoder().decode(gzip.stderr));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("openCompressedLog() streams a log once it outgrows its memory buffer", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = join(dir, "drvs", "ab", "big.drv.gz");
    const line = "0123456789".repeat(10) + "\n";
    const chunks = Array.from({ length: 2000 }, (_, i) => `${i} ${line}`);
    const summary = await pumpBuildLog(streamOf(...chunks), {
      logLines: 1,
      logFile: await openCompressedLog(path),
    });
    assertEquals(summary.tail, [`1999 ${line.trimEnd()}`]);
    assertEquals(new TextDecoder().decode(gunzipSync(Deno.readFileSync(path))), chunks.join(""));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("pumpBuildLog() stops at the size limit without logging the chunk that passed it", async () => {
  let limits = 0;
  const lines: string[] = [];
  const summary = await pumpBuildLog(streamOf("12345\n", "67890\n", "more\n"), {
    logLines: 10,
    maxLogSize: 8,
    onLine: (l) => lines.push(l),
    onLogLimit: () => limits++,
  });
  assertEquals(summary, { bytes: 12, tail: ["12345"], limitExceeded: true });
  assertEquals(lines, ["12345"]);
  assertEquals(limits, 1);
});
