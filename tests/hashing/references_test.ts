import { assertEquals } from "../_assert.ts";
import { ReferenceScanner } from "../../lib/hashing/mod.ts";

const A = "i00sflxqsj37lfmf95m8mn0grv615hpj";
const B = "q4mzjdlh5px6977h7v5fdsk1p33yg583";
const encoder = new TextEncoder();

function scan(chunks: string[], parts = [A, B]): string[] {
  const scanner = new ReferenceScanner(new Set(parts));
  for (const c of chunks) scanner.update(encoder.encode(c));
  return [...scanner.found].sort();
}

Deno.test("ReferenceScanner finds hash parts inside text", () => {
  assertEquals(scan([`#!/bin/sh\nexec /nix/store/${A}-source/bin/x\n`]), [A]);
  assertEquals(scan([`${B}${A}`]), [A, B]);
  assertEquals(scan(["nothing here"]), []);
});

Deno.test("ReferenceScanner finds a hash part split across chunks at every offset", () => {
  const text = `xx/${A}-y`;
  for (let cut = 0; cut <= text.length; cut++) {
    assertEquals(scan([text.slice(0, cut), text.slice(cut)]), [A], `cut at ${cut}`);
  }
  // Byte by byte: the tail must carry across many tiny chunks.
  assertEquals(scan([...text]), [A]);
});

Deno.test("ReferenceScanner ignores near misses", () => {
  assertEquals(scan([A.slice(0, 31) + "e"]), []);
  assertEquals(scan([A.slice(1)]), []);
});
