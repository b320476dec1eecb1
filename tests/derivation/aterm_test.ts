import {
  type Derivation,
  DerivationSyntaxError,
  parseDerivation,
  parseDerivations,
  printDerivation,
} from "../../lib/derivation/mod.ts";
import { parseHash } from "../../lib/hashing/mod.ts";
import { assertEquals, assertThrows } from "../_assert.ts";
import { INTERMEDIATE_FIRST, SOURCE_FIRST } from "./_golden.ts";

const ESCAPED = 'Derive([("out","/nix/store/00000000000000000000000000000000-x","","")],[],[],' +
  '"sys\'tem","/bin/b\\"\\\\\\n\\r\\t",["a\\"b","\\\\","\\n\\r\\t","é😀\x07"],' +
  '[("k\\"ey","v\\\\al"),("out","/nix/store/00000000000000000000000000000000-x")])';

Deno.test("parseDerivation() and printDerivation() round-trip Nix's golden files", () => {
  for (const [text, name] of [[SOURCE_FIRST, "source"], [INTERMEDIATE_FIRST, "intermediate"]]) {
    assertEquals(printDerivation(parseDerivation(text, name)), text);
  }
  const drv = parseDerivation(SOURCE_FIRST, "source");
  const out = drv.outputs.get("out")!;
  assertEquals(out.kind, "fixed");
  if (out.kind === "fixed") {
    assertEquals(out.method, "nar");
    assertEquals(
      out.hash.toString("base16"),
      "894517c9163c896ec31a2adbd33c0681fd5f45b2c0ef08a64c92a03fb97f390f",
    );
  }
  assertEquals(
    parseDerivation(INTERMEDIATE_FIRST, "intermediate").inputDrvs,
    new Map([["/nix/store/q4mzjdlh5px6977h7v5fdsk1p33yg583-source.drv", ["out"]]]),
  );
});

Deno.test("parseDerivation() unescapes builder, args and env and printDerivation() escapes them back", () => {
  const drv = parseDerivation(ESCAPED, "x");
  assertEquals(drv.builder, '/bin/b"\\\n\r\t');
  assertEquals(drv.args, ['a"b', "\\", "\n\r\t", "é😀\x07"]);
  assertEquals(drv.env.get('k"ey'), "v\\al");
  assertEquals(drv.system, "sys'tem");
  assertEquals(printDerivation(drv), ESCAPED);
});

Deno.test("printDerivation() escapes only builder, args and env, and sorts byte-wise", () => {
  const drv: Derivation = {
    name: "x",
    outputs: new Map([
      ["out", { kind: "inputAddressed", path: "/s/o" }],
      ["dev", { kind: "deferred" }],
      ["b", {
        kind: "fixed",
        path: "/s/f",
        method: "flat",
        hash: parseHash("md5:" + "ab".repeat(16)),
      }],
      ["c", { kind: "floating", method: "nar", algorithm: "sha256" }],
      ["d", { kind: "impure", method: "text", algorithm: "sha256" }],
    ]),
    inputDrvs: new Map([["/s/z.drv", ["out", "dev", "out"]], ["/s/a.drv", ["lib"]]]),
    inputSrcs: ["/s/b", "/s/a", "/s/b"],
    system: "a\tb",
    builder: "\t",
    args: ["z", "a"],
    env: new Map([["z", "1"], ["\uffff", "2"], ["😀", "3"], ["B", "\n"], ["a", ""]]),
  };
  assertEquals(
    printDerivation(drv),
    'Derive([("b","/s/f","md5","abababababababababababababababab"),("c","","r:sha256",""),' +
      '("d","","text:sha256","impure"),("dev","","",""),("out","/s/o","","")],' +
      '[("/s/a.drv",["lib"]),("/s/z.drv",["dev","out"])],["/s/a","/s/b"],"a\tb","\\t",' +
      '["z","a"],[("B","\\n"),("a",""),("z","1"),("\uffff","2"),("😀","3")])',
  );
  assertEquals(printDerivation(parseDerivation(printDerivation(drv), "x")), printDerivation(drv));
});

Deno.test("printDerivation() masks output paths and output env vars", () => {
  const drv = parseDerivation(INTERMEDIATE_FIRST, "intermediate");
  assertEquals(
    printDerivation(drv, { maskOutputs: true }),
    'Derive([("dev","","",""),("out","","","")],[("/nix/store/q4mzjdlh5px6977h7v5fdsk1p33yg583-' +
      'source.drv",["out"])],[],"x86_64-linux","/bin/intermediate",[],[("dev",""),("out","")])',
  );
});

Deno.test("parseDerivation() rejects every truncation with its offset", () => {
  for (let n = 0; n < ESCAPED.length; n++) {
    const e = assertThrows(() => parseDerivation(ESCAPED.slice(0, n), "x"), DerivationSyntaxError);
    assertEquals((e as DerivationSyntaxError).offset <= n, true, `prefix of ${n}`);
  }
  assertThrows(
    () => parseDerivation(SOURCE_FIRST.slice(0, 20), "source"),
    DerivationSyntaxError,
    "Invalid derivation 'source' at offset 20: expected '\"', found the end of the text",
  );
});

Deno.test("parseDerivation() rejects malformed text with what it expected", () => {
  const cases: [string, string][] = [
    [
      ESCAPED.replace("v\\\\al", "v\\qal"),
      "expected an escape (\\\" \\\\ \\n \\r \\t), found '\\q'",
    ],
    [ESCAPED.replace('"sys', '"s\\ys'), "expected a string without escapes, found '\\'"],
    [ESCAPED.replace("\\n\\r", "\n\\r"), "expected '\\n', found a raw \\n"],
    [ESCAPED + " ", "expected the end of the text, found ' '"],
    [ESCAPED.replace("Derive(", "Derive ("), "expected 'Derive(', found ' '"],
    [ESCAPED.replace('"","")]', '"","");'), "expected ',' or ']', found ';'"],
    ["DrvWithVersion(", "dynamic derivations are not supported"],
    [SOURCE_FIRST.replace('"/nix/store/i00', '"nix/store/i00'), "expected an absolute path"],
    [SOURCE_FIRST.replace("894517c9", "894517c"), "expected a base-16 sha256 hash"],
    [SOURCE_FIRST.replace("894517c9", "894517C9"), "expected a base-16 sha256 hash"],
    [SOURCE_FIRST.replace("r:sha256", "r:sha3"), "Unknown hash algorithm 'sha3'"],
    [SOURCE_FIRST.replace("r:sha256", "git:sha1"), "git hashing"],
    [
      INTERMEDIATE_FIRST.replace('("dev"', '("zzz"'),
      "expected outputs in sorted order, found 'out' after 'zzz'",
    ],
    [
      INTERMEDIATE_FIRST.replace('("dev","/nix/store/xgsk', '("out","/nix/store/xgsk'),
      "expected outputs in sorted order, found duplicate 'out'",
    ],
    [
      INTERMEDIATE_FIRST.replace(
        '[("dev","/nix/store/xgskw9kbh807ah56r4f4kxdh0fa1i0ip-intermediate-dev"),',
        '[("out","x"),',
      ),
      "expected environment variables in sorted order, found duplicate 'out'",
    ],
    [
      INTERMEDIATE_FIRST.replace('["out"]', '["out","dev"]'),
      "expected output names in sorted order",
    ],
    [
      SOURCE_FIRST.replace(',[],[],"x86', ',[],["/b","/a"],"x86'),
      "expected input sources in sorted order, found '/a' after '/b'",
    ],
  ];
  for (const [text, message] of cases) {
    assertThrows(() => parseDerivation(text, "x"), DerivationSyntaxError, message);
  }
});

Deno.test("parseDerivations() reads back-to-back and whitespace-separated terms named by env.name", () => {
  const named = SOURCE_FIRST.replace('[],[("out"', '[],[("name","source"),("out"');
  const structured = ESCAPED.replace('[("k\\"ey"', '[("__json","{\\"name\\":\\"st\\"}"),("k\\"ey"');
  const drvs = parseDerivations(`\n${named}${structured}\n\t ${named}\n`);
  assertEquals(drvs.map((d) => d.name), ["source", "st", "source"]);
  assertEquals(printDerivation(drvs[1]), structured);
  assertThrows(
    () => parseDerivations(`${named} ${SOURCE_FIRST}`),
    DerivationSyntaxError,
    "#2 at offset",
  );
  assertThrows(() => parseDerivations(" \n"), DerivationSyntaxError, "expected 'Derive('");
});
