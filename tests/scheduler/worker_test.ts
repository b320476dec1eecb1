import { assert, assertEquals, assertRejects } from "../_assert.ts";
import { exitCodeOf, runGoals, type SchedulerEvent } from "../../lib/scheduler/mod.ts";
import { failureOf, graphOf, ManualWork, messageOf, statuses } from "./_work.ts";

Deno.test("runGoals() never runs more builds at once than maxJobs", async () => {
  const leaves = ["a", "b", "c", "d", "e", "f", "g"];
  const graph = graphOf({ top: leaves, ...Object.fromEntries(leaves.map((l) => [l, []])) });
  const work = new ManualWork();
  const run = runGoals(graph, ["top"], { build: work.build, maxJobs: 3 });
  const first = await work.nextCalls(3);
  assertEquals(work.calls.length, 3);
  for (const path of first) {
    work.succeed(path);
    await work.nextCall();
    assertEquals(work.running, 3);
  }
  for (;;) {
    const open = work.open;
    if (open.length === 0) break;
    for (const path of open) work.succeed(path);
    if (open.includes("top")) break;
    await work.nextCall();
  }
  const results = await run;
  assertEquals(work.maxRunning, 3);
  assertEquals(results.get("top")!.status, "built");
});

Deno.test("runGoals() runs a shared dependency once for all its dependents", async () => {
  const dependents = Array.from({ length: 50 }, (_, i) => `user${i}`);
  const graph = graphOf({
    top: dependents,
    shared: [],
    ...Object.fromEntries(dependents.map((d) => [d, ["shared"]])),
  });
  let count = 0;
  const results = await runGoals(graph, ["top", ...dependents], {
    build: (path) => {
      if (path === "shared") count++;
      return Promise.resolve({ status: "built" });
    },
    maxJobs: 8,
  });
  assertEquals(count, 1);
  assertEquals(results.size, 52);
  assert([...results.values()].every((r) => r.status === "built"));
});

Deno.test("runGoals() starts a dependent only after its dependencies succeed", async () => {
  const graph = graphOf({ app: ["lib", "tool"], lib: ["libc"], tool: [], libc: [] });
  const work = new ManualWork();
  const run = runGoals(graph, ["app"], { build: work.build, maxJobs: 4 });
  assertEquals((await work.nextCalls(2)).sort(), ["libc", "tool"]);
  work.succeed("libc");
  assertEquals(await work.nextCall(), "lib");
  work.succeed("lib");
  work.succeed("tool");
  assertEquals(await work.nextCall(), "app");
  work.succeed("app");
  assertEquals(statuses(await run), {
    app: "built",
    lib: "built",
    libc: "built",
    tool: "built",
  });
  assertEquals(work.calls, ["libc", "tool", "lib", "app"]);
});

Deno.test("runGoals() does not run already-valid goals nor follow their dependencies", async () => {
  const graph = graphOf({ app: ["lib"], lib: ["not-in-graph"] }, { valid: ["lib"] });
  graph.get("lib")!.outputs = { out: "/nix/store/lib" };
  const work = new ManualWork();
  const run = runGoals(graph, ["app"], { build: work.build });
  assertEquals(await work.nextCall(), "app");
  work.succeed("app", { out: "/nix/store/app" });
  const results = await run;
  assertEquals(work.calls, ["app"]);
  assertEquals(results.get("lib"), {
    kind: "build",
    path: "lib",
    status: "already-valid",
    outputs: { out: "/nix/store/lib" },
    timesBuilt: 0,
    startTime: 0,
    stopTime: 0,
  });
  const app = results.get("app")!;
  assertEquals(app.status === "built" && app.outputs, { out: "/nix/store/app" });
  assertEquals(exitCodeOf(results.values()), 0);
});

Deno.test("runGoals() runs only the closure of its targets", async () => {
  const graph = graphOf({ app: ["lib"], lib: [], unrelated: ["lib"], broken: ["missing"] });
  const order: string[] = [];
  const results = await runGoals(graph, ["app", "app"], {
    build: (path) => {
      order.push(path);
      return Promise.resolve({ status: "built" });
    },
  });
  assertEquals(order, ["lib", "app"]);
  assertEquals([...results.keys()], ["app", "lib"]);
  assertEquals((await runGoals(graph, [], { build: () => Promise.reject() })).size, 0);
});

Deno.test("runGoals() with one slot starts the ready goal with the longest waiting chain", async () => {
  // Ready at the start: s1, s2 (nothing waits on them but the target) and c1 (three goals wait).
  const graph = graphOf({
    top: ["s1", "s2", "c3"],
    s1: [],
    s2: [],
    c3: ["c2"],
    c2: ["c1"],
    c1: [],
  });
  const order: string[] = [];
  await runGoals(graph, ["top"], {
    build: (path) => {
      order.push(path);
      return Promise.resolve({ status: "built" });
    },
  });
  // c1 (3 waiting above it) before s1 and s2 (1), though found last; then c2 (2); then the
  // ties at 1 in discovery order.
  assertEquals(order, ["c1", "c2", "s1", "s2", "c3", "top"]);
});

Deno.test("runGoals() gives substitutions their own pool", async () => {
  const graph = graphOf(
    { top: ["p1", "p2", "p3", "p4", "b1", "b2"], p1: [], p2: [], p3: [], p4: [], b1: [], b2: [] },
    { kinds: { p1: "substitute", p2: "substitute", p3: "substitute", p4: "substitute" } },
  );
  const work = new ManualWork();
  const run = runGoals(graph, ["top"], {
    build: work.build,
    substitute: work.substitute,
    maxJobs: 1,
    maxSubstitutionJobs: 3,
  });
  assertEquals((await work.nextCalls(4)).sort(), ["b1", "p1", "p2", "p3"]);
  work.substituted("p1");
  assertEquals(await work.nextCall(), "p4");
  for (const path of ["p2", "p3", "p4"]) work.substituted(path);
  work.succeed("b1");
  assertEquals(await work.nextCall(), "b2");
  work.succeed("b2");
  assertEquals(await work.nextCall(), "top");
  work.succeed("top");
  const results = await run;
  assertEquals(work.maxRunning, 4);
  assertEquals(results.get("p1")!.status, "substituted");
  assertEquals(results.get("p1")!.kind, "substitute");
});

Deno.test("runGoals() without keep-going fails dependents, aborts running goals, starts nothing", async () => {
  const graph = graphOf({
    top: ["app", "other", "later"],
    app: ["broken", "fine"],
    broken: [],
    fine: [],
    other: [],
    later: [],
  });
  const work = new ManualWork();
  const run = runGoals(graph, ["top"], { build: work.build, maxJobs: 2 });
  const [first, second] = await work.nextCalls(2);
  assertEquals([first, second].sort(), ["broken", "fine"]);
  work.fail("broken");
  await work.aborted("fine");
  work.fail("fine", { reason: "signal", message: "killed", exitCode: null });
  const results = await run;
  assertEquals(statuses(results), {
    top: "failed:dependency-failed",
    app: "failed:dependency-failed",
    broken: "failed:exit-non-zero",
    fine: "failed:cancelled",
    other: "failed:cancelled",
    later: "failed:cancelled",
  });
  assertEquals(
    messageOf(results, "app"),
    "1 dependencies of derivation 'app' failed to build",
  );
  assertEquals(
    messageOf(results, "top"),
    "1 dependencies of derivation 'top' failed to build",
  );
  assertEquals(messageOf(results, "other"), "build of 'other' was cancelled");
  assertEquals(work.calls.sort(), ["broken", "fine"]);
  assertEquals(exitCodeOf(results.values()), 100);
});

Deno.test("runGoals() with keep-going builds everything buildable and counts failed dependencies", async () => {
  const graph = graphOf({
    top: ["app", "other"],
    app: ["x", "y", "z"],
    x: [],
    y: [],
    z: [],
    other: ["z"],
  });
  const results = await runGoals(graph, ["top"], {
    build: (path) =>
      Promise.resolve(
        path === "x" || path === "y"
          ? { status: "failed", reason: "exit-non-zero", message: `${path} failed`, exitCode: 2 }
          : { status: "built" },
      ),
    keepGoing: true,
    maxJobs: 1,
  });
  assertEquals(statuses(results), {
    top: "failed:dependency-failed",
    app: "failed:dependency-failed",
    x: "failed:exit-non-zero",
    y: "failed:exit-non-zero",
    z: "built",
    other: "built",
  });
  assertEquals(
    messageOf(results, "app"),
    "2 dependencies of derivation 'app' failed to build",
  );
  assertEquals(
    messageOf(results, "top"),
    "1 dependencies of derivation 'top' failed to build",
  );
  assertEquals(failureOf(results, "x").exitCode, 2);
});

Deno.test("runGoals() with keep-going waits for every dependency before failing a dependent", async () => {
  const graph = graphOf({ app: ["bad", "slow"], bad: [], slow: [] });
  const work = new ManualWork();
  const events: string[] = [];
  const run = runGoals(graph, ["app"], {
    build: work.build,
    keepGoing: true,
    maxJobs: 2,
    onEvent: (e) => events.push(`${e.type} ${e.path}`),
  });
  await work.nextCalls(2);
  work.fail("bad");
  work.fail("slow", { reason: "timed-out", message: "timed out" });
  const results = await run;
  assertEquals(
    messageOf(results, "app"),
    "2 dependencies of derivation 'app' failed to build",
  );
  assertEquals(events, [
    "started bad",
    "started slow",
    "finished bad",
    "finished slow",
    "finished app",
  ]);
  assertEquals(exitCodeOf(results.values()), 101);
});

Deno.test("runGoals() reports a substitute goal whose reference failed in Nix's words", async () => {
  const graph = graphOf({ path: ["ref"], ref: [] }, {
    kinds: { path: "substitute", ref: "substitute" },
  });
  const results = await runGoals(graph, ["path"], {
    build: () => Promise.reject(new Error("unused")),
  });
  assertEquals(failureOf(results, "ref").reason, "no-substituters");
  assertEquals(
    messageOf(results, "ref"),
    "path 'ref' is required, but there is no substituter that can build it",
  );
  assertEquals(
    messageOf(results, "path"),
    "some references of path 'path' could not be realised",
  );
  assertEquals(exitCodeOf(results.values()), 1);
});

Deno.test("runGoals() on abort cancels running goals and starts nothing new", async () => {
  const graph = graphOf({ top: ["a", "b", "c"], a: [], b: [], c: [] });
  const work = new ManualWork();
  const controller = new AbortController();
  const run = runGoals(graph, ["top"], {
    build: work.build,
    maxJobs: 2,
    signal: controller.signal,
  });
  await work.nextCalls(2);
  controller.abort(new DOMException("Interrupted", "AbortError"));
  assert(work.signalOf("a").aborted && work.signalOf("b").aborted);
  assertEquals(work.signalOf("a").reason.message, "Interrupted");
  work.throw("a", work.signalOf("a").reason);
  work.succeed("b");
  const results = await run;
  assertEquals(statuses(results), {
    top: "failed:cancelled",
    a: "failed:cancelled",
    b: "built",
    c: "failed:cancelled",
  });
  assertEquals(work.calls, ["a", "b"]);
  assertEquals(exitCodeOf(results.values()), 1);
});

Deno.test("runGoals() with an already aborted signal runs nothing", async () => {
  const work = new ManualWork();
  const results = await runGoals(graphOf({ a: [] }), ["a"], {
    build: work.build,
    signal: AbortSignal.abort(),
  });
  assertEquals(work.calls, []);
  assertEquals(failureOf(results, "a").reason, "cancelled");
});

Deno.test("runGoals() turns an exception from a goal function into an internal failure", async () => {
  const graph = graphOf({ app: ["lib"], lib: [] });
  const boom = new TypeError("Derivation has no builder");
  const results = await runGoals(graph, ["app"], {
    build: () => {
      throw boom;
    },
  });
  const lib = failureOf(results, "lib");
  assertEquals(lib.reason, "internal");
  assertEquals(lib.message, "Internal error while building 'lib': Derivation has no builder");
  assertEquals(lib.cause, boom);
  assertEquals(failureOf(results, "app").reason, "dependency-failed");
  assertEquals(exitCodeOf(results.values()), 1);
});

Deno.test("runGoals() turns a malformed outcome into an internal failure", async () => {
  const graph = graphOf({ a: [], b: [], c: [] });
  const outcomes: Record<string, unknown> = {
    a: undefined,
    b: { status: "substituted" },
    c: { status: "failed", reason: "bogus", message: "x" },
  };
  const results = await runGoals(graph, ["a", "b", "c"], {
    build: (path) => Promise.resolve(outcomes[path] as never),
    keepGoing: true,
  });
  assertEquals(
    [...results.values()].map((r) => r.status === "failed" && r.message),
    [
      "Internal error while building 'a': the build function returned no result",
      "Internal error while building 'b': the build function returned status 'substituted'",
      "Internal error while building 'c': the build function returned unknown failure reason 'bogus'",
    ],
  );
});

Deno.test("runGoals() fills results from outcomes and the injected clock", async () => {
  const outcome = {
    status: "failed",
    reason: "exit-non-zero",
    message: "builder for 'a' failed with exit code 3",
    exitCode: 3,
    logTail: ["line 1", "line 2"],
    transient: true,
    timesBuilt: 1,
  } as const;
  let clock = 1000;
  const results = await runGoals(graphOf({ a: [] }), ["a"], {
    build: () => {
      clock += 500;
      return Promise.resolve(outcome);
    },
    now: () => clock,
  });
  assertEquals(results.get("a"), {
    kind: "build",
    path: "a",
    ...outcome,
    startTime: 1000,
    stopTime: 1500,
  });
  assertEquals(exitCodeOf(results.values()), 1);
});

Deno.test("runGoals() emits started and finished events with progress counts", async () => {
  const graph = graphOf(
    { top: ["lib", "src", "done"], lib: [], src: [], done: [] },
    { kinds: { src: "substitute" }, valid: ["done"] },
  );
  const events: SchedulerEvent[] = [];
  await runGoals(graph, ["top"], {
    build: () => Promise.resolve({ status: "built" }),
    substitute: () => Promise.resolve({ status: "substituted" }),
    onEvent: (e) => events.push(e),
  });
  const lines = events.map((e) =>
    `${e.type} ${e.kind} ${e.path} build ${e.progress.build.done}/${e.progress.build.running}/${e.progress.build.expected}` +
    ` sub ${e.progress.substitute.done}/${e.progress.substitute.running}/${e.progress.substitute.expected}`
  );
  assertEquals(lines, [
    "started substitute src build 0/0/2 sub 0/1/1",
    "started build lib build 0/1/2 sub 0/1/1",
    "finished substitute src build 0/1/2 sub 1/0/1",
    "finished build lib build 1/0/2 sub 1/0/1",
    "started build top build 1/1/2 sub 1/0/1",
    "finished build top build 2/0/2 sub 1/0/1",
  ]);
});

Deno.test("runGoals() rejects when the event listener throws, after running goals settle", async () => {
  const work = new ManualWork();
  const run = runGoals(graphOf({ top: ["a", "b"], a: [], b: [] }), ["top"], {
    build: work.build,
    maxJobs: 2,
    onEvent: (e) => {
      if (e.type === "started" && e.path === "b") throw new RangeError("listener bug");
    },
  });
  await work.nextCalls(2);
  assert(work.signalOf("a").aborted);
  work.succeed("a");
  work.succeed("b");
  await assertRejects(() => run, RangeError, "listener bug");
});

Deno.test("runGoals() rejects a graph with a missing node, a cycle or no way to build", async () => {
  const build = () => Promise.resolve({ status: "built" as const });
  await assertRejects(
    () => runGoals(graphOf({ a: ["b"] }), ["a"], { build }),
    TypeError,
    "Goal graph has no node for 'b', a dependency of 'a'",
  );
  await assertRejects(
    () => runGoals(graphOf({}), ["a"], { build }),
    TypeError,
    "Goal graph has no node for target 'a'",
  );
  await assertRejects(
    () => runGoals(graphOf({ top: ["a"], a: ["b"], b: ["c"], c: ["a"] }), ["top"], { build }),
    TypeError,
    "Goal graph has a dependency cycle through '",
  );
  await assertRejects(
    () => runGoals(graphOf({ a: ["a"] }), ["a"], { build }),
    TypeError,
    "dependency cycle through 'a'",
  );
  await assertRejects(
    () => runGoals(graphOf({ a: [] }), ["a"], { build, maxJobs: 0 }),
    RangeError,
    "Unable to start any build; either increase '--max-jobs'",
  );
  await assertRejects(
    () => runGoals(graphOf({ a: [] }), ["a"], { build, maxJobs: 1.5 }),
    RangeError,
    "Option maxJobs is not a non-negative integer: 1.5",
  );
});

Deno.test("runGoals() with maxJobs 0 still substitutes", async () => {
  const graph = graphOf({ p: [] }, { kinds: { p: "substitute" } });
  const results = await runGoals(graph, ["p"], {
    build: () => Promise.reject(new Error("unused")),
    substitute: () => Promise.resolve({ status: "substituted" }),
    maxJobs: 0,
    maxSubstitutionJobs: 0,
  });
  assertEquals(results.get("p")!.status, "substituted");
});
