import {
  type Derivation,
  parseDerivation,
  parseDerivationJson,
  parseDerivationJsonText,
  printDerivation,
  printDerivationJson,
} from "../../lib/derivation/mod.ts";
import { assertEquals, assertThrows } from "../_assert.ts";
import { INTERMEDIATE_FIRST, SOURCE_FIRST } from "./_golden.ts";

const STORE = "/nix/store";
const SRC_DRV = "q4mzjdlh5px6977h7v5fdsk1p33yg583-source.drv";
const MID_DRV = "f8g8x4m83da3b2f79iv84q2r3qlc58lr-intermediate.drv";
const SRC_OUT = "i00sflxqsj37lfmf95m8mn0grv615hpj-source";
const DEV = "xgskw9kbh807ah56r4f4kxdh0fa1i0ip-intermediate-dev";
const OUT = "jlzxv2xpqj0adi22cy93573vyf9xr6fw-intermediate";
const HEX = "894517c9163c896ec31a2adbd33c0681fd5f45b2c0ef08a64c92a03fb97f390f";
const SRI = "sha256-iUUXyRY8iW7DGirb0zwGgf1fRbLA7wimTJKgP7l/OQ8=";
const full = (base: string) => `${STORE}/${base}`;

/** The golden pair in each layout Nix has printed; `p` writes a path as that layout does. */
function layouts(): Record<string, unknown> {
  const common = (p: (b: string) => string, builder: string, out: Record<string, string>) => ({
    system: "x86_64-linux",
    builder,
    args: [],
    env: Object.fromEntries(Object.entries(out).map(([k, v]) => [k, full(v)])),
    outputs: Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { path: p(v) }])),
  });
  const v28 = {
    [full(SRC_DRV)]: {
      ...common(full, "/bin/first", { out: SRC_OUT }),
      outputs: { out: { path: full(SRC_OUT), hashAlgo: "r:sha256", hash: HEX } },
      inputSrcs: [],
      inputDrvs: {},
    },
    [full(MID_DRV)]: {
      ...common(full, "/bin/intermediate", { dev: DEV, out: OUT }),
      inputSrcs: [],
      inputDrvs: { [full(SRC_DRV)]: ["out"] },
    },
  };
  const v218 = {
    [full(SRC_DRV)]: { ...v28[full(SRC_DRV)], name: "source" },
    [full(MID_DRV)]: {
      ...v28[full(MID_DRV)],
      name: "intermediate",
      inputDrvs: { [full(SRC_DRV)]: { outputs: ["out"], dynamicOutputs: {} } },
    },
  };
  const v223 = {
    ...v218,
    [full(SRC_DRV)]: {
      ...v218[full(SRC_DRV)],
      outputs: { out: { path: full(SRC_OUT), method: "nar", hashAlgo: "sha256", hash: HEX } },
    },
  };
  const base = (b: string) => b;
  const v3 = {
    [SRC_DRV]: {
      ...common(base, "/bin/first", { out: SRC_OUT }),
      name: "source",
      version: 3,
      outputs: { out: { method: "nar", hashAlgo: "sha256", hash: HEX } },
      inputSrcs: [],
      inputDrvs: {},
    },
    [MID_DRV]: {
      ...common(base, "/bin/intermediate", { dev: DEV, out: OUT }),
      name: "intermediate",
      version: 3,
      inputSrcs: [],
      inputDrvs: { [SRC_DRV]: { outputs: ["out"], dynamicOutputs: {} } },
    },
  };
  const v4 = {
    version: 4,
    derivations: {
      [SRC_DRV]: {
        ...common(base, "/bin/first", { out: SRC_OUT }),
        name: "source",
        version: 4,
        outputs: { out: { method: "nar", hash: SRI } },
        inputs: { srcs: [], drvs: {} },
      },
      [MID_DRV]: {
        ...common(base, "/bin/intermediate", { dev: DEV, out: OUT }),
        name: "intermediate",
        version: 4,
        inputs: { srcs: [], drvs: { [SRC_DRV]: { outputs: ["out"], dynamicOutputs: {} } } },
      },
    },
  };
  return { "2.8": v28, "2.18": v218, "2.23": v223, "2.32 (v3)": v3, "2.33+ (v4)": v4 };
}

Deno.test("parseDerivationJson() reads every layout Nix has printed", () => {
  for (const [version, doc] of Object.entries(layouts())) {
    const entries = parseDerivationJson(doc, STORE);
    assertEquals(entries.map((e) => e.path), [full(SRC_DRV), full(MID_DRV)], version);
    assertEquals(entries.map((e) => printDerivation(e.drv)), [SOURCE_FIRST, INTERMEDIATE_FIRST]);
    assertEquals(entries.map((e) => e.drv.name), ["source", "intermediate"]);
  }
});

Deno.test("parseDerivationJson() reads a single derivation object, named by name or env.name", () => {
  const v4 = (layouts()["2.33+ (v4)"] as { derivations: Record<string, object> }).derivations;
  const [single] = parseDerivationJson(v4[MID_DRV], STORE);
  assertEquals(single.path, undefined);
  assertEquals(printDerivation(single.drv), INTERMEDIATE_FIRST);
  const v28 = layouts()["2.8"] as Record<string, { env: Record<string, string> }>;
  const unnamed = { ...v28[full(SRC_DRV)], env: { ...v28[full(SRC_DRV)].env, name: "source" } };
  assertEquals(parseDerivationJson(unnamed, STORE)[0].drv.name, "source");
});

Deno.test("printDerivationJson() prints version 4 with sorted keys, compact or pretty", () => {
  const drvs = [
    parseDerivation(INTERMEDIATE_FIRST, "intermediate"),
    parseDerivation(SOURCE_FIRST, "source"),
  ];
  const compact = printDerivationJson(drvs.map((drv) => ({ drv })), STORE);
  assertEquals(
    compact,
    `{"derivations":{"${MID_DRV}":{"args":[],"builder":"/bin/intermediate","env":{"dev":"${
      full(DEV)
    }",` +
      `"out":"${
        full(OUT)
      }"},"inputs":{"drvs":{"${SRC_DRV}":{"dynamicOutputs":{},"outputs":["out"]}},` +
      `"srcs":[]},"name":"intermediate","outputs":{"dev":{"path":"${DEV}"},"out":{"path":"${OUT}"}},` +
      `"system":"x86_64-linux","version":4},"${SRC_DRV}":{"args":[],"builder":"/bin/first","env":` +
      `{"out":"${
        full(SRC_OUT)
      }"},"inputs":{"drvs":{},"srcs":[]},"name":"source","outputs":{"out":` +
      `{"hash":"${SRI}","method":"nar"}},"system":"x86_64-linux","version":4}},"version":4}`,
  );
  const pretty = printDerivationJson(drvs.map((drv) => ({ drv })), STORE, { pretty: true });
  assertEquals(pretty, JSON.stringify(JSON.parse(compact), null, 2));
  assertEquals(parseDerivationJsonText(pretty, STORE).map((e) => printDerivation(e.drv)), [
    INTERMEDIATE_FIRST,
    SOURCE_FIRST,
  ]);
});

// deno-lint-ignore no-explicit-any -- the cases below change arbitrary parts of parsed JSON
type Json = any;

function withEnv(extra: [string, string][]): Derivation {
  const drv = parseDerivation(SOURCE_FIRST, "source");
  return { ...drv, env: new Map([...drv.env, ...extra]) };
}

Deno.test("printDerivationJson() and parseDerivationJsonText() round-trip structured attrs", () => {
  const json =
    '{"10":1,"9":[2.0,1e-07,-3,123456789012345678,null,true],"a":{"":"\\"\\n\\t\\u0001é😀"},"b":{}}';
  const drv = withEnv([["__json", json]]);
  const text = printDerivationJson([{ drv }], STORE, { pretty: true });
  const [doc] = Object.values(JSON.parse(text).derivations) as Json[];
  assertEquals(doc.env.__json, undefined);
  assertEquals(doc.structuredAttrs.a[""], '"\n\t\u0001é😀');
  const [back] = parseDerivationJsonText(text, STORE);
  assertEquals(back.drv.env.get("__json"), json);
  assertEquals(printDerivation(back.drv), printDerivation(drv));
  // `__json` that is not in canonical form stays in env, so nothing is lost.
  const loose = withEnv([["__json", '{ "a": 1 }']]);
  const looseDoc = printDerivationJson([{ drv: loose }], STORE);
  assertEquals(
    printDerivation(parseDerivationJsonText(looseDoc, STORE)[0].drv),
    printDerivation(loose),
  );
});

Deno.test("parseDerivationJson() rejects malformed derivations naming the derivation and field", () => {
  const key = full(SRC_DRV);
  const v28 = () => structuredClone(layouts()["2.8"]) as Record<string, Json>;
  const cases: [(d: Json) => void, string][] = [
    [(d) => delete d.system, "field 'system' is missing"],
    [(d) => d.args = "x", "field 'args' must be an array, found a string"],
    [(d) => d.args = [1], "field 'args[0]' must be a string, found a number"],
    [(d) => d.env.out = 1, "field 'env.out' must be a string, found a number"],
    [
      (d) => d.outputs.out.hash = "abc",
      "field 'outputs.out.hash' is invalid: Invalid sha256 hash 'abc'",
    ],
    [(d) => d.outputs.out.hashAlgo = "r:sha3", "field 'outputs.out.hashAlgo' is invalid"],
    [(d) => d.outputs.out.path = full(OUT), "field 'outputs.out.path' is '/nix/store/jlzx"],
    [(d) => d.outputs.out.extra = 1, "field 'outputs.out.extra' is not an output field"],
    [(d) => d.outputs = [], "field 'outputs' must be an object, found an array"],
    [(d) => d.inputSrcs = ["relative/x"], "field 'inputSrcs[0]' is invalid"],
    [
      (d) => d.inputDrvs = { [full(MID_DRV)]: { outputs: ["out"], dynamicOutputs: { out: {} } } },
      `field 'inputDrvs.${full(MID_DRV)}.dynamicOutputs' must be empty`,
    ],
    [(d) => d.version = 5, "field 'version' is 5"],
  ];
  for (const [change, message] of cases) {
    const doc = v28();
    change(doc[key]);
    assertThrows(
      () => parseDerivationJson(doc, STORE),
      TypeError,
      `Invalid JSON for derivation '${key}': ${message}`,
    );
  }
  const single = v28()[key];
  delete single.builder;
  single.name = "source";
  assertThrows(
    () => parseDerivationJson(single, STORE),
    TypeError,
    "derivation 'source': field 'builder' is missing",
  );
  assertThrows(
    () => parseDerivationJson({ "x.drv": {} }, STORE),
    TypeError,
    "derivation 'x.drv': field '(key)' is invalid",
  );
  assertThrows(
    () => parseDerivationJson({ [full(SRC_OUT)]: {} }, STORE),
    TypeError,
    "must be a .drv path",
  );
  assertThrows(
    () => parseDerivationJson({ version: 5, derivations: {} }, STORE),
    TypeError,
    "has version 5, expected 4",
  );
  assertThrows(
    () => parseDerivationJson([], STORE),
    TypeError,
    "must be an object, found an array",
  );
});

Deno.test("parseDerivationJsonText() rejects duplicate keys and truncated text", () => {
  assertThrows(
    () => parseDerivationJsonText('{"a":1,"a":2}', STORE),
    SyntaxError,
    "expected no duplicate key 'a'",
  );
  const text = JSON.stringify(layouts()["2.8"]);
  for (const n of [0, 1, 10, text.length - 1]) {
    assertThrows(
      () => parseDerivationJsonText(text.slice(0, n), STORE),
      SyntaxError,
      "Invalid JSON at offset",
    );
  }
  assertThrows(
    () => parseDerivationJsonText('{"a":"\\q"}', STORE),
    SyntaxError,
    "expected a JSON escape",
  );
});
