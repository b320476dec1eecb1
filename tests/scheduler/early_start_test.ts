/** runGoals(): dependents started before their dependency registered (see `BuildHooks`). */

import { assertEquals } from "../_assert.ts";
import { runGoals } from "../../lib/scheduler/mod.ts";
import { graphOf, ManualWork, messageOf, statuses } from "./_work.ts";

Deno.test("runGoals() starts a dependent early once its last dependency's outputs are ready", async () => {
  const graph = graphOf({ top: ["mid", "side"], mid: ["low"], low: [], side: [] });
  const work = new ManualWork();
  const events: string[] = [];
  const run = runGoals(graph, ["top"], {
    build: work.build,
    maxJobs: 1,
    onEvent: (e) => events.push(`${e.type} ${e.path} running=${e.progress.build.running}`),
  });
  const first = await work.nextCall();
  assertEquals(first, "low", "the longest chain goes first");
  assertEquals(await work.hooksOf("low").dependenciesRegistered, true);
  // Its slot is free now: with one job, mid (whose last dependency low is) starts at once.
  assertEquals(await work.hooksOf("low").outputsReady(), true);
  assertEquals(await work.nextCall(), "mid");
  assertEquals(await work.hooksOf("low").outputsReady(), false, "a second call does nothing");
  let registered: boolean | undefined;
  work.hooksOf("mid").dependenciesRegistered.then((ok) => registered = ok);
  await Promise.resolve();
  assertEquals(registered, undefined, "mid may not register before low has");
  // mid finishes first: its result waits for low's.
  work.succeed("mid");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals(events.filter((e) => e.startsWith("finished")), []);
  work.succeed("low");
  assertEquals(await work.nextCall(), "side");
  assertEquals(registered, true);
  // side is not top's last dependency yet... it is now (mid has settled): top starts early.
  assertEquals(await work.hooksOf("side").outputsReady(), true);
  assertEquals(await work.nextCall(), "top");
  work.succeed("side");
  work.succeed("top");
  const results = await run;
  assertEquals(statuses(results), { top: "built", mid: "built", low: "built", side: "built" });
  // A goal started early is announced once its dependency has succeeded.
  assertEquals(events, [
    "started low running=1",
    "finished low running=1",
    "started mid running=1",
    "finished mid running=0",
    "started side running=1",
    "finished side running=1",
    "started top running=1",
    "finished top running=0",
  ]);
});

Deno.test("runGoals() lets a build go on from outputsReady once the dependents it started are underway", async () => {
  const graph = graphOf({ top: ["low"], low: [] });
  const work = new ManualWork();
  work.underwayOnCall = false;
  const run = runGoals(graph, ["top"], { build: work.build, maxJobs: 1 });
  assertEquals(await work.nextCall(), "low");
  let ready: boolean | undefined;
  const outputsReady = work.hooksOf("low").outputsReady().then((started) => ready = started);
  assertEquals(await work.nextCall(), "top");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals(ready, undefined, "top is not underway yet");
  work.hooksOf("top").underway();
  assertEquals(await outputsReady, true);
  work.succeed("low");
  work.succeed("top");
  assertEquals(statuses(await run), { top: "built", low: "built" });
});

Deno.test("runGoals() asks to prepare a build once the last dependency it waits for starts", async () => {
  const graph = graphOf({ top: ["a", "b"], a: [], b: [] });
  const work = new ManualWork();
  const prepared: string[] = [];
  const run = runGoals(graph, ["top"], {
    build: work.build,
    prepare: (path) => prepared.push(path),
    maxJobs: 1,
  });
  const first = await work.nextCall();
  assertEquals(prepared, [], "top still waits for two");
  work.succeed(first);
  const second = await work.nextCall();
  assertEquals(prepared, ["top"]);
  work.succeed(second);
  assertEquals(await work.nextCall(), "top");
  work.succeed("top");
  assertEquals((await run).get("top")!.status, "built");
  assertEquals(prepared, ["top"], "once");
});

Deno.test("runGoals() starts early only the dependents whose last dependency it is", async () => {
  const graph = graphOf({ top: ["a", "b"], a: [], b: [] });
  const work = new ManualWork();
  const run = runGoals(graph, ["top"], { build: work.build, maxJobs: 2 });
  await work.nextCalls(2);
  assertEquals(await work.hooksOf("a").outputsReady(), false, "top still waits for b");
  work.succeed("b");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals(work.calls, ["a", "b"], "a has not settled: top waits for it");
  work.succeed("a");
  assertEquals(await work.nextCall(), "top");
  assertEquals(await work.hooksOf("top").dependenciesRegistered, true);
  work.succeed("top");
  assertEquals((await run).get("top")!.status, "built");
});

Deno.test("runGoals() fails a dependent started early when its dependency then fails", async () => {
  for (const keepGoing of [false, true]) {
    const graph = graphOf({ top: ["mid"], mid: ["low"], low: [] });
    const work = new ManualWork();
    const started: string[] = [];
    const run = runGoals(graph, ["top"], {
      build: work.build,
      maxJobs: 1,
      keepGoing,
      onEvent: (e) => e.type === "started" && started.push(e.path),
    });
    await work.nextCall();
    await work.hooksOf("low").outputsReady();
    assertEquals(await work.nextCall(), "mid");
    const aborted = work.aborted("mid");
    work.fail("low", { reason: "output-rejected", message: "output of 'low' is not allowed" });
    await aborted;
    assertEquals(await work.hooksOf("mid").dependenciesRegistered, false);
    work.fail("mid", { reason: "cancelled", message: "build of 'mid' was cancelled" });
    const results = await run;
    assertEquals(statuses(results), {
      top: "failed:dependency-failed",
      mid: "failed:dependency-failed",
      low: "failed:output-rejected",
    }, `keepGoing ${keepGoing}`);
    assertEquals(messageOf(results, "mid"), "1 dependencies of derivation 'mid' failed to build");
    assertEquals(started, ["low"], "mid ran, but was never announced");
  }
});

Deno.test("runGoals() fails a dependent started early but still queued when its dependency fails", async () => {
  // One job: when low's outputs are ready, x (a longer chain) takes the slot and mid waits.
  const graph = graphOf({ top: ["w", "mid"], mid: ["low"], low: [], w: ["x"], x: [] });
  const work = new ManualWork();
  const run = runGoals(graph, ["top"], { build: work.build, maxJobs: 1, keepGoing: true });
  assertEquals(await work.nextCall(), "low");
  assertEquals(await work.hooksOf("low").outputsReady(), true);
  assertEquals(await work.nextCall(), "x");
  work.fail("low");
  work.succeed("x");
  assertEquals(await work.nextCall(), "w");
  work.succeed("w");
  const results = await run;
  assertEquals(work.calls, ["low", "x", "w"], "mid never ran");
  assertEquals(statuses(results), {
    top: "failed:dependency-failed",
    mid: "failed:dependency-failed",
    low: "failed:exit-non-zero",
    w: "built",
    x: "built",
  });
});

Deno.test("runGoals() settles a held-back dependent after the rest of its dependency's dependents", async () => {
  // keep-going: d already has a failed dependency, so only m starts early; m finishes first.
  const graph = graphOf({ m: ["g"], d: ["g", "f"], g: [], f: [] });
  const work = new ManualWork();
  const run = runGoals(graph, ["m", "d"], { build: work.build, maxJobs: 2, keepGoing: true });
  assertEquals((await work.nextCalls(2)).sort(), ["f", "g"]);
  work.fail("f");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals(await work.hooksOf("g").outputsReady(), true);
  assertEquals(await work.nextCall(), "m");
  work.succeed("m");
  work.succeed("g");
  const results = await run;
  assertEquals(statuses(results), {
    m: "built",
    d: "failed:dependency-failed",
    g: "built",
    f: "failed:exit-non-zero",
  });
});
