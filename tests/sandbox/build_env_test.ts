import { join } from "node:path";
import type { Derivation, DerivationOutput } from "../../lib/derivation/derivation.ts";
import { hashBytes, parseHash } from "../../lib/hashing/mod.ts";
import {
  type BuildEnvironmentOptions,
  type ExportedPathInfo,
  hashPlaceholder,
  makeBuildEnvironment,
  parseExportReferencesGraph,
  passAsFileName,
} from "../../lib/sandbox/mod.ts";
import { assertEquals, assertThrows } from "../_assert.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";

const STORE = "/nix/store";
const OUT = `${STORE}/xgskw9kbh807ah56r4f4kxdh0fa1i0ip-probe`;

function makeDrv(env: Record<string, string>, outputs?: Map<string, DerivationOutput>): Derivation {
  return {
    name: "probe",
    outputs: outputs ?? new Map([["out", { kind: "inputAddressed", path: OUT }]]),
    inputDrvs: new Map(),
    inputSrcs: [],
    system: "x86_64-linux",
    builder: "/bin/sh",
    args: ["-c", "echo"],
    env: new Map(Object.entries({ name: "probe", out: OUT, ...env })),
  };
}

function options(extra: Partial<BuildEnvironmentOptions> = {}): BuildEnvironmentOptions {
  return {
    storeDir: STORE,
    buildDir: "/build",
    cores: 4,
    outputPaths: new Map([["out", OUT]]),
    fixedOutput: false,
    ...extra,
  };
}

Deno.test("makeBuildEnvironment() sets Nix's variables after the derivation's own", () => {
  const { env, files } = makeBuildEnvironment(
    makeDrv({ PATH: "/custom", TMPDIR: "/ignored", TERM: "dumb", foo: "bar" }),
    options(),
  );
  assertEquals(env, {
    HOME: "/homeless-shelter",
    NIX_BUILD_CORES: "4",
    NIX_BUILD_TOP: "/build",
    NIX_LOG_FD: "2",
    NIX_STORE: STORE,
    PATH: "/custom",
    PWD: "/build",
    TEMP: "/build",
    TEMPDIR: "/build",
    TERM: "xterm-256color",
    TMP: "/build",
    TMPDIR: "/build",
    foo: "bar",
    name: "probe",
    out: OUT,
  });
  assertEquals(files.size, 0);
});

Deno.test("makeBuildEnvironment() passes passAsFile attributes as files", () => {
  const { env, files } = makeBuildEnvironment(
    makeDrv({ big: "a\nb", passAsFile: "big missing" }),
    options(),
  );
  const name = passAsFileName("big");
  assertEquals(name, ".attr-1lak0mvllw8rv9i9ygkglvhqsq19qi9ynl4bi7gbf69ab5nzw89a");
  assertEquals(env.bigPath, `/build/${name}`);
  assertEquals(env.big, undefined);
  assertEquals(files, new Map([[name, "a\nb"]]));
});

Deno.test("makeBuildEnvironment() gives fixed-output builds impureEnvVars", () => {
  const drv = makeDrv({ impureEnvVars: "http_proxy  NOT_SET" });
  assertEquals(makeBuildEnvironment(drv, options()).env.http_proxy, undefined);
  const { env } = makeBuildEnvironment(
    drv,
    options({ fixedOutput: true, impureEnv: { http_proxy: "http://p", OTHER: "x" } }),
  );
  assertEquals(env.NIX_OUTPUT_CHECKED, "1");
  assertEquals(env.http_proxy, "http://p");
  assertEquals(env.NOT_SET, "");
  assertEquals(env.OTHER, undefined);
});

Deno.test("makeBuildEnvironment() rewrites output placeholders", () => {
  const placeholder = hashPlaceholder("out");
  assertEquals(placeholder, "/1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9");
  const drv = makeDrv({ script: `echo ${placeholder}/bin`, big: placeholder, passAsFile: "big" });
  drv.args = [placeholder];
  const built = makeBuildEnvironment(drv, options({ outputPaths: new Map([["out", "/tmp/x"]]) }));
  assertEquals(built.env.script, "echo /tmp/x/bin");
  assertEquals(built.args, ["/tmp/x"]);
  assertEquals(built.files.get(passAsFileName("big")), "/tmp/x");
});

Deno.test("makeBuildEnvironment() writes .attrs.json and .attrs.sh for structured attrs", () => {
  const json = JSON.stringify({
    b: true,
    f: false,
    n: null,
    i: -7,
    fl: 1.5,
    whole: 2.0,
    s: "it's",
    l: ["x", 1, null],
    bad: [[1]],
    o: { "k'": "v", j: 3 },
    nested: { a: { b: 1 } },
    "not-a-name": "x",
    outputs: ["out"],
  }).replace('"whole":2', '"whole":2.0').replace('"fl":1.5', '"fl":1.5,"tiny":1e-5,"huge":1e16');
  const { env, files } = makeBuildEnvironment(makeDrv({ __json: json }), options());
  assertEquals(env.name, undefined);
  assertEquals(env.NIX_ATTRS_JSON_FILE, "/build/.attrs.json");
  assertEquals(env.NIX_ATTRS_SH_FILE, "/build/.attrs.sh");
  assertEquals(
    files.get(".attrs.json"),
    '{"b":true,"bad":[[1]],"f":false,"fl":1.5,"huge":1e+16,"i":-7,"l":["x",1,null],"n":null,' +
      '"nested":{"a":{"b":1}},"not-a-name":"x","o":{"j":3,"k\'":"v"},' +
      `"outputs":{"out":"${OUT}"},"s":"it's","tiny":1e-05,"whole":2.0}`,
  );
  assertEquals(
    files.get(".attrs.sh"),
    [
      "declare b=1",
      "declare f=",
      "declare huge=-2147483648",
      "declare i=-7",
      "declare -a l=('x' 1 '' )",
      "declare n=''",
      "declare -A o=(['j']=3 ['k'\\''']='v' )",
      `declare -A outputs=(['out']='${OUT}' )`,
      "declare s='it'\\''s'",
      "declare whole=2",
      "",
    ].join("\n"),
  );
});

Deno.test("parseExportReferencesGraph() reads both forms and rejects bad ones", () => {
  const dep = `${STORE}/q4mzjdlh5px6977h7v5fdsk1p33yg583-source`;
  assertEquals(
    parseExportReferencesGraph(makeDrv({ exportReferencesGraph: `g ${dep}/sub` }), STORE),
    new Map([["g", [dep]]]),
  );
  assertEquals(
    parseExportReferencesGraph(
      makeDrv({ __json: JSON.stringify({ exportReferencesGraph: { g: [dep] } }) }),
      STORE,
    ),
    new Map([["g", [dep]]]),
  );
  assertThrows(
    () => parseExportReferencesGraph(makeDrv({ exportReferencesGraph: "g" }), STORE),
    TypeError,
    "odd number",
  );
  assertThrows(
    () => parseExportReferencesGraph(makeDrv({ exportReferencesGraph: "g /etc" }), STORE),
    TypeError,
    "non-store path '/etc'",
  );
  assertThrows(
    () => parseExportReferencesGraph(makeDrv({ exportReferencesGraph: `a/b ${dep}` }), STORE),
    TypeError,
    "Invalid file name 'a/b'",
  );
});

Deno.test("makeBuildEnvironment() writes exportReferencesGraph files", () => {
  const a = `${STORE}/q4mzjdlh5px6977h7v5fdsk1p33yg583-a`;
  const b = `${STORE}/f8g8x4m83da3b2f79iv84q2r3qlc58lr-b`;
  const info = (path: string, references: string[]): ExportedPathInfo => ({
    path,
    references,
    narHash: hashBytes("sha256", path),
    narSize: 100,
    closureSize: 200,
  });
  const { files } = makeBuildEnvironment(
    makeDrv({ exportReferencesGraph: `g ${a}` }),
    options({ referenceGraphs: new Map([["g", [info(a, [b, a]), info(b, [])]]]) }),
  );
  assertEquals(files.get("g"), `${b}\n\n0\n${a}\n\n2\n${b}\n${a}\n`);
});

// --- The oracle: real Nix 2.8 builds a derivation whose builder records what it was given. ---

const PROBE_SCRIPT = `
if [ -n "$NIX_ATTRS_SH_FILE" ]; then source "$NIX_ATTRS_SH_FILE"; out=\${outputs[out]}; fi
if [ -n "$SIDE" ]; then
  /usr/bin/env -0 > "$SIDE/env"; /bin/printf hello > "$out"
else
  /bin/mkdir "$out"; /usr/bin/env -0 > "$out/env"; /bin/cp -r "$NIX_BUILD_TOP" "$out/files"
fi
`;

const PROBE_NIX = `
{ kind }:
let
  dep1 = builtins.toFile "dep1" "one";
  dep2 = builtins.toFile "dep2" "refers to \${dep1}";
  common = {
    system = builtins.currentSystem;
    builder = "/bin/bash";
    args = [ "-c" (builtins.readFile ./probe.sh) ];
    FOO = "it's \\"quoted\\"\\nmulti";
    big = "hello\\nworld";
    num = 42;
    flag = true;
    list = [ "a" "b c" ];
  };
in derivation (common // {
  plain = { name = "plain"; passAsFile = [ "big" "absent" ]; exportReferencesGraph = [ "graph" dep2 ]; };
  structured = {
    name = "structured";
    __structuredAttrs = true;
    nested = { x = 1; y = [ 1 2 ]; };
    floats = [ 1.5 1.0 0.0001 0.00001 123456.789 1.0e16 ];
    f = 2.0;
    hugef = 1.0e16;
    neg = -3;
    nul = null;
    attrs = { k = "v"; "k'2" = 3; };
    exportReferencesGraph = { graph = [ dep2 ]; };
  };
  fixed = {
    name = "fixed";
    SIDE = builtins.getEnv "KILN_SIDE";
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    impureEnvVars = [ "KILN_IMPURE_SET" "KILN_IMPURE_UNSET" ];
  };
}.\${kind})
`;

// deno-lint-ignore no-explicit-any
type Json = any;

/** `nix show-derivation` JSON (2.8 layout) -> Derivation: just what these tests need. */
function derivationFromShowJson(path: string, json: Json): Derivation {
  const outputs = new Map<string, DerivationOutput>();
  for (const [name, o] of Object.entries<Json>(json.outputs)) {
    if (o.hash === undefined) {
      outputs.set(name, { kind: "inputAddressed", path: o.path });
    } else {
      const recursive = o.hashAlgo.startsWith("r:");
      const algo = o.hashAlgo.replace(/^r:/, "");
      const hash = parseHash(o.hash, algo);
      outputs.set(name, { kind: "fixed", path: o.path, method: recursive ? "nar" : "flat", hash });
    }
  }
  return {
    name: path.slice(path.lastIndexOf("/") + 1 + 33, -".drv".length),
    outputs,
    inputDrvs: new Map(Object.entries(json.inputDrvs)),
    inputSrcs: json.inputSrcs,
    system: json.system,
    builder: json.builder,
    args: json.args,
    env: new Map(Object.entries(json.env)),
  };
}

async function pathInfos(nix: NixSandbox, root: string): Promise<ExportedPathInfo[]> {
  const text = await nix.run("nix", ["path-info", "--json", "--closure-size", "-r", root]);
  return JSON.parse(text).map((i: Json) => ({
    path: i.path,
    narHash: parseHash(i.narHash),
    narSize: i.narSize,
    references: i.references,
    ca: i.ca,
    closureSize: i.closureSize,
  }));
}

function parseEnvDump(bytes: Uint8Array): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of new TextDecoder().decode(bytes).split("\0")) {
    if (entry === "") continue;
    const eq = entry.indexOf("=");
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  // Added by the probe's own bash, not by Nix.
  delete env.SHLVL;
  delete env._;
  return env;
}

async function readFiles(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for await (const entry of Deno.readDir(dir)) {
    files.set(entry.name, await Deno.readTextFile(join(dir, entry.name)));
  }
  return files;
}

async function withProbe(
  kind: string,
  fn: (
    nix: NixSandbox,
    drv: Derivation,
    observed: Uint8Array,
    files?: Map<string, string>,
  ) => Promise<void>,
): Promise<void> {
  const nix = new NixSandbox("sandbox = false\ncores = 3\n");
  const side = Deno.makeTempDirSync({ prefix: "kiln-side-" });
  try {
    Deno.chmodSync(side, 0o777);
    Deno.writeTextFileSync(join(nix.root, "probe.nix"), PROBE_NIX);
    Deno.writeTextFileSync(join(nix.root, "probe.sh"), PROBE_SCRIPT);
    Object.assign(nix.env, { KILN_SIDE: side, KILN_IMPURE_SET: "impure value" });
    const drvPath = (await nix.run("nix-instantiate", [
      join(nix.root, "probe.nix"),
      "--argstr",
      "kind",
      kind,
    ])).trim();
    const shown = JSON.parse(await nix.run("nix", ["show-derivation", drvPath]));
    const drv = derivationFromShowJson(drvPath, shown[drvPath]);
    const out = (await nix.run("nix-store", ["--realise", drvPath])).trim();
    if (kind === "fixed") {
      await fn(nix, drv, Deno.readFileSync(join(side, "env")));
    } else {
      await fn(nix, drv, Deno.readFileSync(join(out, "env")), await readFiles(join(out, "files")));
    }
  } finally {
    Deno.removeSync(side, { recursive: true });
    nix.cleanup();
  }
}

function oracleOptions(
  nix: NixSandbox,
  drv: Derivation,
  observedEnv: Record<string, string>,
  extra: Partial<BuildEnvironmentOptions> = {},
): BuildEnvironmentOptions {
  const outputPaths = new Map<string, string>();
  for (const [name, o] of drv.outputs) if ("path" in o) outputPaths.set(name, o.path);
  return {
    storeDir: nix.storeDir,
    buildDir: observedEnv.NIX_BUILD_TOP,
    cores: 3,
    outputPaths,
    fixedOutput: false,
    ...extra,
  };
}

async function referenceGraphs(
  nix: NixSandbox,
  drv: Derivation,
): Promise<Map<string, ExportedPathInfo[]>> {
  const graphs = new Map<string, ExportedPathInfo[]>();
  for (const [name, roots] of parseExportReferencesGraph(drv, nix.storeDir)) {
    graphs.set(name, (await Promise.all(roots.map((r) => pathInfos(nix, r)))).flat());
  }
  return graphs;
}

for (const kind of ["plain", "structured"]) {
  Deno.test({
    name: `makeBuildEnvironment() matches Nix 2.8 for a ${kind} derivation`,
    ignore: !nixAvailable,
    fn: () =>
      withProbe(kind, async (nix, drv, observed, files) => {
        const observedEnv = parseEnvDump(observed);
        const graphs = await referenceGraphs(nix, drv);
        const built = makeBuildEnvironment(
          drv,
          oracleOptions(nix, drv, observedEnv, { referenceGraphs: graphs }),
        );
        assertEquals(built.env, observedEnv);
        assertEquals(built.files.get(".attrs.sh"), files?.get(".attrs.sh"));
        assertEquals(built.files, files);
        assertEquals(built.files.size, 2); // passAsFile + graph, or .attrs.json + .attrs.sh
      }),
  });
}

Deno.test({
  name: "makeBuildEnvironment() matches Nix 2.8 for a fixed-output derivation",
  ignore: !nixAvailable,
  fn: () =>
    withProbe("fixed", (nix, drv, observed) => {
      const observedEnv = parseEnvDump(observed);
      const built = makeBuildEnvironment(
        drv,
        oracleOptions(nix, drv, observedEnv, { fixedOutput: true, impureEnv: nix.env }),
      );
      assertEquals(observedEnv.KILN_IMPURE_SET, "impure value");
      assertEquals(built.env, observedEnv);
      return Promise.resolve();
    }),
});
