import {
  checkOutputPaths,
  computeOutputPaths,
  type Derivation,
  type DerivationHash,
  DerivationOutputError,
  derivationPath,
  derivationType,
  hashDerivationModulo,
  orderByDependencies,
  parseDerivation,
} from "../../lib/derivation/mod.ts";
import { hashBytes, makeOutputPath } from "../../lib/hashing/mod.ts";
import { assert, assertEquals, assertThrows } from "../_assert.ts";
import { INTERMEDIATE_FIRST, SOURCE_FIRST } from "./_golden.ts";

const STORE = "/nix/store";
const SOURCE_PATH = "/nix/store/q4mzjdlh5px6977h7v5fdsk1p33yg583-source.drv";
const source = parseDerivation(SOURCE_FIRST, "source");
const intermediate = parseDerivation(INTERMEDIATE_FIRST, "intermediate");

function resolver(drvs: Record<string, Derivation>): (path: string) => Derivation {
  return (path) => drvs[path] ?? assert(false, `unexpected resolve of ${path}`);
}

Deno.test("derivationPath() gives the golden .drv paths", () => {
  assertEquals(derivationPath(STORE, source), SOURCE_PATH);
  assertEquals(
    derivationPath(STORE, intermediate),
    "/nix/store/f8g8x4m83da3b2f79iv84q2r3qlc58lr-intermediate.drv",
  );
});

Deno.test("hashDerivationModulo() hashes a fixed-output derivation by its content address", () => {
  // sha256("fixed:out:r:sha256:894517…390f:/nix/store/i00s…-source")
  const { kind, hashes } = hashDerivationModulo(source, resolver({}));
  assertEquals(kind, "regular");
  assertEquals(
    hashes.get("out")!.toString("base16"),
    "42cfa58bf5a281911b6c9471c67cf64f70a820b033415190db3da91710c5ff2c",
  );
});

Deno.test("hashDerivationModulo() replaces inputs by their hashes, merging equal ones", () => {
  const resolve = resolver({ [SOURCE_PATH]: source });
  const hash = hashDerivationModulo(intermediate, resolve).hashes.get("dev")!;
  // Golden parent-split-modulo.drv names the intermediate by this hash.
  assertEquals(
    hash.toString("base16"),
    "6df335a6cafec6b08aa38163a4a3d1b8f04bc8dc10de4ad35d677f911f2d3b5a",
  );
  // Golden parent-joined.drv: both outputs of one input collapse into one entry.
  const parent = parseDerivation(
    'Derive([("out","","","")],[("/nix/store/kp6i4n4bb3hlniwqjakhlf046qpdc0gl-intermediate.drv",' +
      '["dev","out"])],[],"x86_64-linux","/bin/parent",[],[])',
    "parent",
  );
  const parentResolve = (p: string) => p.endsWith("-intermediate.drv") ? intermediate : resolve(p);
  assertEquals(
    hashDerivationModulo(parent, parentResolve).hashes.get("out"),
    hashBytes(
      "sha256",
      'Derive([("out","","","")],[("6df335a6cafec6b08aa38163a4a3d1b8f04bc8dc10de4ad35d677f911f2d3b5a",' +
        '["dev","out"])],[],"x86_64-linux","/bin/parent",[],[])',
    ),
  );
});

Deno.test("computeOutputPaths() gives the golden output paths from the masked derivation", () => {
  // The reference's masked ATerm (no env) hashes to the golden paths…
  const masked =
    'Derive([("dev","","",""),("out","","","")],[("42cfa58bf5a281911b6c9471c67cf64f70a' +
    '820b033415190db3da91710c5ff2c",["out"])],[],"x86_64-linux","/bin/intermediate",[],[])';
  const h = hashBytes("sha256", masked);
  assertEquals(
    makeOutputPath(STORE, "out", h, "intermediate"),
    "/nix/store/jlzxv2xpqj0adi22cy93573vyf9xr6fw-intermediate",
  );
  assertEquals(
    makeOutputPath(STORE, "dev", h, "intermediate"),
    "/nix/store/xgskw9kbh807ah56r4f4kxdh0fa1i0ip-intermediate-dev",
  );
  // …and so does the same derivation without env vars, whichever fixed-output drv it uses.
  const noEnv = { ...intermediate, env: new Map<string, string>() };
  const expected = new Map([
    ["dev", "/nix/store/xgskw9kbh807ah56r4f4kxdh0fa1i0ip-intermediate-dev"],
    ["out", "/nix/store/jlzxv2xpqj0adi22cy93573vyf9xr6fw-intermediate"],
  ]);
  assertEquals(computeOutputPaths(STORE, noEnv, resolver({ [SOURCE_PATH]: source })), expected);
  const other = { ...source, builder: "/bin/second" };
  const otherPath = derivationPath(STORE, other);
  const viaOther = { ...noEnv, inputDrvs: new Map([[otherPath, ["out"]]]) };
  assertEquals(computeOutputPaths(STORE, viaOther, resolver({ [otherPath]: other })), expected);
  assertEquals(
    computeOutputPaths(STORE, source, resolver({})),
    new Map([["out", "/nix/store/i00sflxqsj37lfmf95m8mn0grv615hpj-source"]]),
  );
});

Deno.test("checkOutputPaths() names the first wrong output or output env var", () => {
  const resolve = resolver({ [SOURCE_PATH]: source });
  const noEnv = { ...intermediate, env: new Map<string, string>() };
  assertThrows(
    () => checkOutputPaths(STORE, noEnv, resolve),
    DerivationOutputError,
    "Derivation 'intermediate' has incorrect environment variable 'dev', should be '/nix/store/xgskw9kbh807ah56r4f4kxdh0fa1i0ip-intermediate-dev'",
  );
  // The golden intermediate's recorded paths do not take its env vars into account.
  const e = assertThrows(
    () => checkOutputPaths(STORE, intermediate, resolve),
    DerivationOutputError,
    "Derivation 'intermediate' has incorrect output 'dev', should be '/nix/store/",
  ) as DerivationOutputError;
  assertEquals(e.output, "dev");
  const wrongFixed = parseDerivation(SOURCE_FIRST.replaceAll("i00sf", "i00sg"), "source");
  assertThrows(
    () => checkOutputPaths(STORE, wrongFixed, resolve),
    DerivationOutputError,
    "incorrect output 'out'",
  );
  assertEquals(checkOutputPaths(STORE, source, resolve).size, 1);
});

Deno.test("derivationType() requires a fixed-output derivation to have exactly one output, out", () => {
  const fixed = source.outputs.get("out")!;
  assertThrows(
    () => derivationType({ ...source, outputs: new Map([["out", fixed], ["dev", fixed]]) }),
    TypeError,
    "exactly one output, named 'out'",
  );
  assertThrows(
    () => derivationType({ ...source, outputs: new Map([["bin", fixed]]) }),
    TypeError,
    "named 'out'",
  );
  assertThrows(
    () =>
      derivationType({
        ...source,
        outputs: new Map([["out", fixed], ["dev", { kind: "deferred" }]]),
      }),
    TypeError,
    "mixes output kinds",
  );
  assertThrows(
    () => derivationType({ ...source, outputs: new Map() }),
    TypeError,
    "has no outputs",
  );
});

/** `layers` layers of `width` derivations, each depending on every one of the layer below. */
function layeredGraph(layers: number, width: number): Map<string, Derivation> {
  const drvs = new Map<string, Derivation>();
  let below: string[] = [];
  for (let l = 0; l < layers; l++) {
    const layer: string[] = [];
    for (let i = 0; i < width; i++) {
      const drv: Derivation = {
        name: `n-${l}-${i}`,
        outputs: new Map([["out", { kind: "deferred" }], ["dev", { kind: "deferred" }]]),
        inputDrvs: new Map(below.map((p) => [p, ["out", "dev"]])),
        inputSrcs: [],
        system: "x86_64-linux",
        builder: "/bin/sh",
        args: [],
        env: new Map(),
      };
      const path = derivationPath(STORE, drv);
      drvs.set(path, drv);
      layer.push(path);
    }
    below = layer;
  }
  return drvs;
}

Deno.test("hashDerivationModulo() resolves each input once in deep and wide graphs", () => {
  for (const [layers, width] of [[4000, 1], [40, 40]]) {
    const drvs = layeredGraph(layers, width);
    const top = [...drvs.values()].at(-1)!;
    let calls = 0;
    const resolve = (p: string) => (calls++, drvs.get(p)!);
    // Counts the hashing work (one memo entry per derivation hashed), not the time it takes.
    let hashed = 0;
    const cache = new class extends Map<string, DerivationHash> {
      override set(path: string, hash: DerivationHash): this {
        hashed++;
        return super.set(path, hash);
      }
    }();
    const paths = computeOutputPaths(STORE, top, resolve, { cache });
    assertEquals(calls, drvs.size - width, `${layers}x${width}`);
    assertEquals(hashed, drvs.size - width, `${layers}x${width}`);
    assertEquals(paths.size, 2);
    assertEquals(orderByDependencies(drvs).length, drvs.size);
  }
});

Deno.test("orderByDependencies() puts inputs first and rejects a cycle", () => {
  const drvs = layeredGraph(5, 3);
  const order = orderByDependencies(new Map([...drvs].reverse()));
  const position = new Map(order.map((p, i) => [p, i]));
  for (const [path, drv] of drvs) {
    for (const input of drv.inputDrvs.keys()) assert(position.get(input)! < position.get(path)!);
  }
  const a = [...drvs.values()][0];
  const cyclic = new Map([["/a.drv", { ...a, inputDrvs: new Map([["/b.drv", ["out"]]]) }], [
    "/b.drv",
    { ...a, inputDrvs: new Map([["/a.drv", ["out"]]]) },
  ]]);
  assertThrows(() => orderByDependencies(cyclic), RangeError, "depends on itself");
});
