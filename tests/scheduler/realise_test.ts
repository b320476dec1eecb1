/** realise(): a whole build run through the library, watched through its events, no CLI. */

import { join } from "node:path";
import { derivationReferences, printDerivation } from "../../lib/derivation/mod.ts";
import {
  buildLogDir,
  type BuildSettings,
  realise,
  type RealiseOptions,
  type RunEvent,
} from "../../lib/scheduler/mod.ts";
import { LocalStore, pathExists, removeTree } from "../../lib/store/mod.ts";
import { assert, assertEquals } from "../_assert.ts";
import { DrvSet, type TestDrv } from "../e2e/_drv.ts";

const SETTINGS: BuildSettings = {
  cores: 1,
  timeout: 0,
  maxSilentTime: 0,
  logLines: 25,
  maxLogSize: 0,
  sandbox: "off",
  sandboxPaths: [],
  sandboxBuildDir: "/build",
  keepFailed: false,
  rounds: 1,
};

/** A store with store root `/` (unsandboxed builders write in place) and its set of derivations. */
async function withStore(
  fn: (store: LocalStore, set: DrvSet, options: RealiseOptions) => Promise<void>,
): Promise<void> {
  const root = Deno.makeTempDirSync({ prefix: "kiln-realise-test-" });
  Deno.chmodSync(root, 0o755);
  const tmpDir = join(root, "tmp");
  Deno.mkdirSync(tmpDir);
  const store = LocalStore.open({
    storeDir: join(root, "store"),
    storeRoot: "/",
    stateDir: join(root, "state"),
  });
  const options: RealiseOptions = {
    storeRoot: "/",
    logDir: buildLogDir(join(root, "state")),
    tmpDir,
    impureEnv: {},
    settings: SETTINGS,
    sandboxFallback: false,
    maxJobs: 2,
    keepGoing: false,
  };
  try {
    await fn(store, new DrvSet(store.storeDir), options);
  } finally {
    store.close();
    removeTree(root);
  }
}

async function addDrvs(store: LocalStore, drvs: TestDrv[]): Promise<void> {
  for (const { drv, outputs } of drvs) {
    await store.addTextToStore(drv.name + ".drv", printDerivation(drv), derivationReferences(drv), {
      derivationOutputs: new Map(Object.entries(outputs)),
    });
  }
}

/** The events as short strings: `start build a`, `line a: text`, `stop a built` ... */
function describe(events: RunEvent[]): string[] {
  const names = new Map<number, string>();
  const lines: string[] = [];
  for (const event of events) {
    if (event.type === "start") {
      names.set(event.id, event.name ?? event.activity);
      lines.push(`start ${event.activity}${event.name ? ` ${event.name}` : ""}`);
    } else if (event.type === "stop") {
      const result = event.result;
      const how = result === undefined
        ? ""
        : ` ${result.status === "failed" ? result.reason : result.status}`;
      lines.push(`stop ${names.get(event.id)}${how}`);
    } else if (event.type === "result" && event.result === "buildLogLine") {
      lines.push(`line ${names.get(event.id)}: ${event.line}`);
    } else if (event.type === "msg") lines.push(`${event.level}: ${event.text.split("\n")[0]}`);
  }
  return lines;
}

Deno.test("realise() builds a graph and tells it as activities, log lines and progress", () =>
  withStore(async (store, set, options) => {
    const a = set.add({ name: "a", script: "echo from a; echo a > $out" });
    const b = set.add({
      name: "b",
      inputs: [a],
      script: `echo from b; echo ${a.outputs.out} > $out`,
    });
    await addDrvs(store, [a, b]);
    const events: RunEvent[] = [];
    await using run = realise(store, [{ drvPath: b.path }], {
      ...options,
      onEvent: (event) => events.push(event),
    });
    const outcome = await run.outcome;
    assert(outcome.status === "realised");
    assertEquals(outcome.results.get(b.path)?.status, "built");
    assert(store.isValidPath(b.outputs.out) && store.isValidPath(a.outputs.out));
    assertEquals(describe(events), [
      "info: these 2 derivations will be built:",
      "start builds",
      "start build a",
      "line a: from a",
      "stop a built",
      "start build b",
      "line b: from b",
      "stop b built",
      "stop builds",
    ]);
    const progress = events.filter((e) => e.type === "result" && e.result === "progress");
    assertEquals(progress.at(-1), {
      type: "result",
      id: 1,
      result: "progress",
      done: 2,
      expected: 2,
      running: 0,
      failed: 0,
    });
  }));

Deno.test("realise() is cancelled while a builder runs: the build reports cancelled, nothing stays", () =>
  withStore(async (store, set, options) => {
    const slow = set.add({ name: "slow", script: "echo running; exec /bin/sleep 30" });
    await addDrvs(store, [slow]);
    const events: RunEvent[] = [];
    await using run = realise(store, [{ drvPath: slow.path }], {
      ...options,
      onEvent: (event) => {
        events.push(event);
        // The builder has printed: it runs.
        if (event.type === "result" && event.result === "buildLogLine") run.cancel();
      },
    });
    const outcome = await run.outcome;
    assert(outcome.status === "realised");
    const result = outcome.results.get(slow.path)!;
    assert(result.status === "failed" && result.reason === "cancelled", JSON.stringify(result));
    assertEquals(describe(events).slice(1), [
      "start builds",
      "start build slow",
      "line slow: running",
      "stop slow cancelled",
      "stop builds",
    ]);
    assert(!store.isValidPath(slow.outputs.out));
    assert(!pathExists(slow.outputs.out), "the output is left behind");
    assertEquals([...Deno.readDirSync(options.tmpDir)], [], "a build dir is left behind");
  }));

Deno.test("realise() with an aborted signal builds nothing and cleans up", () =>
  withStore(async (store, set, options) => {
    const a = set.add({ name: "a", script: "echo a > $out" });
    await addDrvs(store, [a]);
    await using run = realise(store, [{ drvPath: a.path }], {
      ...options,
      signal: AbortSignal.abort(),
    });
    const outcome = await run.outcome;
    assert(outcome.status === "realised");
    assertEquals(outcome.results.get(a.path)?.status, "failed");
    assert(!store.isValidPath(a.outputs.out));
  }));

Deno.test("realise() stops a run whose listener throws, and rejects with its error", () =>
  withStore(async (store, set, options) => {
    const a = set.add({ name: "a", script: "echo a > $out" });
    await addDrvs(store, [a]);
    const error = new Error("listener broke");
    await using run = realise(store, [{ drvPath: a.path }], {
      ...options,
      onEvent: () => {
        throw error;
      },
    });
    let caught: unknown;
    await run.outcome.catch((e) => caught = e);
    assertEquals(caught, error);
  }));
