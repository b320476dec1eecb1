/**
 * Derivations for build tests, made without Nix: a `/bin/sh -c SCRIPT` builder, input-addressed
 * or fixed outputs, paths computed as Nix computes them. `DrvSet` collects them so that
 * `document()` gives the ATerm text `kiln build -` (and `kiln derivation add`) read.
 */

import {
  computeOutputPaths,
  type Derivation,
  type DerivationOutput,
  derivationPath,
  printDerivation,
} from "../../lib/derivation/mod.ts";
import { type Hash, parseHash } from "../../lib/hashing/mod.ts";
import { join } from "node:path";
import { KilnStore } from "../_kiln.ts";
import { NixSandbox } from "../_nix.ts";

/** A derivation made by `DrvSet.add`, with its `.drv` path and output paths. */
export interface TestDrv {
  path: string;
  drv: Derivation;
  outputs: Record<string, string>;
  /** `path^out,dev` etc. */
  with(...outputs: string[]): string;
}

export interface DrvSpec {
  name: string;
  /** The builder's `sh -c` script. */
  script: string;
  outputs?: string[];
  /** Input derivations (all their outputs wanted) whose paths the script may use. */
  inputs?: TestDrv[];
  env?: Record<string, string>;
  /** A fixed output: `flat` or `nar` and its SRI or prefixed hash. */
  fixed?: { method: "flat" | "nar"; hash: string };
}

/** Derivations for one store dir. */
export class DrvSet {
  readonly all = new Map<string, TestDrv>();

  constructor(readonly storeDir: string) {}

  add(spec: DrvSpec): TestDrv {
    const outputNames = spec.outputs ?? ["out"];
    const outputs = new Map<string, DerivationOutput>();
    let fixedHash: Hash | undefined;
    if (spec.fixed) {
      fixedHash = parseHash(spec.fixed.hash, "sha256");
      outputs.set("out", { kind: "fixed", path: "", method: spec.fixed.method, hash: fixedHash });
    } else {
      for (const o of outputNames) outputs.set(o, { kind: "inputAddressed", path: "" });
    }
    const env = new Map<string, string>([
      ["builder", "/bin/sh"],
      ["name", spec.name],
      ["system", "x86_64-linux"],
      ...Object.entries(spec.env ?? {}),
    ]);
    for (const o of outputs.keys()) env.set(o, "");
    if (outputNames.length > 1) env.set("outputs", outputNames.join(" "));
    const drv: Derivation = {
      name: spec.name,
      outputs,
      inputDrvs: new Map((spec.inputs ?? []).map((d) => [d.path, Object.keys(d.outputs)])),
      inputSrcs: [],
      system: "x86_64-linux",
      builder: "/bin/sh",
      args: ["-c", spec.script],
      env,
    };
    const resolve = (p: string) => this.all.get(p)!.drv;
    const paths = computeOutputPaths(this.storeDir, drv, resolve);
    for (const [o, path] of paths) {
      const output = outputs.get(o)!;
      outputs.set(o, { ...output, path: path! } as DerivationOutput);
      env.set(o, path!);
    }
    const drvPath = derivationPath(this.storeDir, drv);
    const made: TestDrv = {
      path: drvPath,
      drv,
      outputs: Object.fromEntries([...paths].map(([o, p]) => [o, p!])),
      with: (...names) => `${drvPath}^${names.join(",")}`,
    };
    this.all.set(drvPath, made);
    return made;
  }

  /** The ATerm text of every derivation added so far. */
  document(): string {
    return [...this.all.values()].map((d) => printDerivation(d.drv)).join("\n");
  }
}

/** Host paths a dynamically linked /bin/sh needs in the sandbox. */
export const HOST_SANDBOX_PATHS = "/bin /usr /lib /lib64?";

/**
 * A kiln store for building: store dir `<tmp>/store` with store root `/` (so unsandboxed
 * builders write their outputs in place), and sandbox-paths that let the host's /bin/sh run.
 */
export function makeBuildStore(): KilnStore {
  const root = Deno.makeTempDirSync({ prefix: "kiln-build-test-" });
  Deno.chmodSync(root, 0o755);
  const store = new KilnStore(join(root, "store"), root);
  store.env.KILN_STORE_ROOT = "/";
  store.env.KILN_CONFIG = `sandbox-paths = ${HOST_SANDBOX_PATHS}\n`;
  return store;
}

/** Adds the set's derivations to `store` and returns nothing; throws when kiln fails. */
export async function addAll(store: KilnStore, set: DrvSet): Promise<void> {
  await store.ok(["derivation", "add"], set.document());
}

/** Runs `fn` with a fresh build store (see makeBuildStore) and an empty DrvSet for it. */
export async function withStore(
  fn: (store: KilnStore, set: DrvSet) => Promise<void>,
): Promise<void> {
  const store = makeBuildStore();
  try {
    await fn(store, new DrvSet(store.storeDir));
  } finally {
    store.cleanup();
  }
}

/**
 * Runs `fn` with a throwaway Nix store (builds unsandboxed) and a kiln store of the same store
 * dir elsewhere on disk (so kiln builds in its sandbox), both removed afterwards.
 */
export async function withNixAndKiln(
  fn: (nix: NixSandbox, kiln: KilnStore) => Promise<void>,
): Promise<void> {
  const nix = new NixSandbox("sandbox = false\n");
  const kiln = new KilnStore(nix.storeDir);
  kiln.env.KILN_CONFIG = `sandbox-paths = ${HOST_SANDBOX_PATHS}\n`;
  try {
    await fn(nix, kiln);
  } finally {
    kiln.cleanup();
    nix.cleanup();
  }
}
