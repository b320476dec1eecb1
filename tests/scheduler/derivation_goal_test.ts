import { join } from "node:path";
import type { Derivation } from "../../lib/derivation/mod.ts";
import { hashBytes } from "../../lib/hashing/mod.ts";
import { buildLogPath, planBuild } from "../../lib/scheduler/mod.ts";
import { LocalStore } from "../../lib/store/mod.ts";
import { builderFailure, goalName } from "../../lib/scheduler/_failures.ts";
import { checkOutputs, type ScannedOutput } from "../../lib/scheduler/_outputs.ts";
import { assertEquals, assertThrows } from "../_assert.ts";

const STORE = "/nix/store";
const OUT = `${STORE}/7qvjy94iwq4y6ws362qpd9xh4m1mmrdb-x`;
const DEV = `${STORE}/8qvjy94iwq4y6ws362qpd9xh4m1mmrdb-x-dev`;
const DEP = `${STORE}/9qvjy94iwq4y6ws362qpd9xh4m1mmrdb-dep`;
const DRV = `${STORE}/aqvjy94iwq4y6ws362qpd9xh4m1mmrdb-x.drv`;

function withStore(fn: (store: LocalStore) => void): void {
  const dir = Deno.makeTempDirSync();
  const store = LocalStore.open({ storeDir: STORE, storeRoot: join(dir, "root"), stateDir: dir });
  try {
    fn(store);
  } finally {
    store.close();
    Deno.removeSync(dir, { recursive: true });
  }
}

function drv(env: Record<string, string>): Derivation {
  return {
    name: "x",
    outputs: new Map([["out", { kind: "inputAddressed", path: OUT }], ["dev", {
      kind: "inputAddressed",
      path: DEV,
    }]]),
    inputDrvs: new Map(),
    inputSrcs: [],
    system: "x86_64-linux",
    builder: "/bin/sh",
    args: [],
    env: new Map(Object.entries(env)),
  };
}

function scanned(path: string, references: string[]): ScannedOutput {
  return { path, narHash: hashBytes("sha256", path), narSize: 1, references };
}

Deno.test("checkOutputs() lists every reference allowedReferences does not allow", () =>
  withStore((store) => {
    const outputs = new Map([["out", scanned(OUT, [DEP, DEV, OUT])], ["dev", scanned(DEV, [])]]);
    assertEquals(
      checkOutputs(DRV, drv({ allowedReferences: "dev" }), outputs, store),
      {
        rejected:
          `output '${OUT}' is not allowed to refer to the following paths:\n  ${OUT}\n  ${DEP}`,
      },
    );
    assertEquals(
      checkOutputs(DRV, drv({ disallowedReferences: "out" }), outputs, store),
      { rejected: `output '${OUT}' is not allowed to refer to the following paths:\n  ${OUT}` },
    );
    assertEquals(checkOutputs(DRV, drv({}), outputs, store), undefined);
  }));

Deno.test("checkOutputs() reports outputs referring to each other as Nix does", () =>
  withStore((store) => {
    const outputs = new Map([["out", scanned(OUT, [DEV])], ["dev", scanned(DEV, [OUT])]]);
    assertEquals(
      checkOutputs(DRV, drv({}), outputs, store),
      {
        rejected:
          `cycle detected in build of '${DRV}' in the references of output 'dev' from output 'out'`,
      },
    );
  }));

Deno.test("checkOutputs() returns a rejection for a bad specifier or outputChecks entry", () =>
  withStore((store) => {
    const outputs = new Map([["out", scanned(OUT, [])], ["dev", scanned(DEV, [])]]);
    assertEquals(checkOutputs(DRV, drv({ allowedReferences: "lib" }), outputs, store), {
      rejected: "derivation contains an illegal reference specifier 'lib'",
    });
    const json = JSON.stringify({ outputChecks: { dev: { allowedReferences: "out" } } });
    assertEquals(checkOutputs(DRV, drv({ __json: json }), outputs, store), {
      rejected: "Attribute 'outputChecks.dev.allowedReferences' must be a list of strings",
    });
  }));

Deno.test("builderFailure() words exit codes, signals and timeouts as Nix 2.8", () => {
  const context = {
    drvPath: DRV,
    goalName: goalName(DRV, "*"),
    fixedOutput: false,
    timeout: 5,
    maxSilentTime: 3,
    maxLogSize: 10,
    fileSystems: [],
  };
  const exited = builderFailure(
    { outcome: { kind: "exited", code: 2 }, tail: ["a", "b"], logBytes: 4 },
    context,
  );
  assertEquals(
    exited.message,
    `builder for '${DRV}' failed with exit code 2;\nlast 2 log lines:\n> a\n> b\n` +
      `For full logs, run 'kiln log ${DRV}'.`,
  );
  assertEquals(exited.reason, "exit-non-zero");
  const signaled = builderFailure(
    { outcome: { kind: "signaled", signal: "SIGKILL" }, tail: [], logBytes: 0 },
    { ...context, fixedOutput: true },
  );
  assertEquals(signaled.message, `builder for '${DRV}' failed due to signal 9 (Killed)`);
  assertEquals(signaled.transient, true);
  assertEquals(
    builderFailure({ outcome: { kind: "silent-timeout" }, tail: [], logBytes: 0 }, context)
      .message,
    `building of '${DRV}!*' from .drv file timed out after 3 seconds of silence`,
  );
});

Deno.test("planBuild() rejects a derivation that is not valid, buildLogPath() splits the name", () =>
  withStore((store) => {
    assertThrows(() => planBuild(store, [{ drvPath: DRV }]), TypeError, "is not valid");
    assertEquals(
      buildLogPath("/logs", DRV),
      "/logs/aq/vjy94iwq4y6ws362qpd9xh4m1mmrdb-x.drv.gz",
    );
  }));
