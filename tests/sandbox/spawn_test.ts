import { runBuilder, spawnBuilder, spawnHelper } from "../../lib/sandbox/mod.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "../_assert.ts";
import { makeFifo, openFifo } from "../_process.ts";
import { FakeClock, timersFrom } from "./_clock.ts";
import { isRunning, readLines, readText, waitUntilGone } from "./_process.ts";

const LAUNCHERS = ["libc", "wrapper"] as const;

for (const launcher of LAUNCHERS) {
  // The default launcher keeps the plain test names.
  const suffix = launcher === "libc" ? "" : " (wrapper launcher)";
  const sh = (script: string, env: Record<string, string> = {}) => ({
    program: "/bin/sh",
    args: ["-c", script],
    env,
    cwd: "/",
    launcher,
  });

  Deno.test(`spawnBuilder() gives stdout and stderr as one stream, in order${suffix}`, async () => {
    await using handle = await spawnBuilder(sh("echo a; echo b >&2; echo c; echo d >&2"));
    assertEquals(await readText(handle.output), "a\nb\nc\nd\n");
    assertEquals(await handle.status, { code: 0, signal: null });
  });

  if (launcher === "libc") {
    Deno.test("spawnBuilder() gives the builder its base name as argv[0], as Nix does", async () => {
      await using handle = await spawnBuilder(sh("/usr/bin/tr '\\0' ' ' < /proc/$$/cmdline"));
      assertEquals(
        await readText(handle.output),
        "sh -c /usr/bin/tr '\\0' ' ' < /proc/$$/cmdline ",
      );
    });
  }

  Deno.test(`spawnBuilder() passes exactly the given environment${suffix}`, async () => {
    const dir = Deno.makeTempDirSync();
    try {
      const env = { A: "1", "not-a-name": "x y", PWD: dir, MULTI: "a\nb" };
      await using handle = await spawnBuilder({
        program: "/usr/bin/env",
        args: ["-0"],
        env,
        cwd: dir,
        launcher,
      });
      const text = await readText(handle.output);
      const seen = Object.fromEntries(
        text.split("\0").filter((e) => e !== "").map((
          e,
        ) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]),
      );
      assertEquals(seen, env);
      await using bare = await spawnBuilder({
        program: "/usr/bin/env",
        args: [],
        env: { A: "1" },
        cwd: dir,
        launcher,
      });
      assertEquals(await readText(bare.output), "A=1\n");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });

  Deno.test(`spawnBuilder() runs with stdin /dev/null, no core dumps, in its own session${suffix}`, async () => {
    const dir = Deno.makeTempDirSync();
    try {
      await using handle = await spawnBuilder({
        ...sh("readlink /proc/self/fd/0; ulimit -S -c; pwd; cut -d' ' -f1,6 /proc/$$/stat", {
          PATH: "/usr/bin:/bin",
        }),
        cwd: dir,
      });
      const [stdin, core, cwd, session] = (await readText(handle.output)).split("\n");
      assertEquals(stdin, "/dev/null");
      assertEquals(core, "0");
      assertEquals(cwd, dir);
      assertEquals(session, `${handle.pid} ${handle.pid}`);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });

  Deno.test(`spawnBuilder() reports the signal that killed the builder${suffix}`, async () => {
    await using handle = await spawnBuilder(sh("kill -TERM $$"));
    assertEquals(await handle.status, { code: null, signal: "SIGTERM" });
    await using failing = await spawnBuilder(sh("exit 3"));
    assertEquals(await failing.status, { code: 3, signal: null });
  });

  Deno.test(`kill() leaves no grandchild running, in or out of the process group${suffix}`, async () => {
    // Each child prints its pid once it is what the test is about (in its own session, or deaf
    // to TERM and HUP), then becomes a sleep: the kill below finds all three so.
    const child = "sh -c 'echo $$; exec sleep 1000'";
    const script = `${child} & setsid ${child} & (trap '' TERM HUP; exec ${child}) & wait`;
    await using handle = await spawnBuilder(sh(script, { PATH: "/usr/bin:/bin" }));
    const reader = handle.output.getReader();
    const pids = (await readLines(reader, 3)).map(Number);
    assert(pids.every(isRunning), "the children run before the kill");
    await handle.kill();
    assertEquals(await handle.status, { code: null, signal: "SIGKILL" });
    assertEquals((await reader.read()).done, true, "no child holds the output pipe");
    assertEquals(await waitUntilGone(pids), []);
  });

  Deno.test(`spawnBuilder() kills what the builder left behind when it exits${suffix}`, async () => {
    await using handle = await spawnBuilder(sh("sleep 1000 & echo $!", { PATH: "/usr/bin:/bin" }));
    const [pid] = (await readText(handle.output)).split("\n").map(Number);
    assertEquals(await handle.status, { code: 0, signal: null });
    assertEquals(await waitUntilGone([pid]), []);
  });

  Deno.test(`spawnBuilder() kills the tree when its signal aborts${suffix}`, async () => {
    const controller = new AbortController();
    await using handle = await spawnBuilder({
      ...sh("sleep 1000 & echo $!; wait", { PATH: "/usr/bin:/bin" }),
      signal: controller.signal,
    });
    const reader = handle.output.getReader();
    const [pid] = (await readLines(reader, 1)).map(Number);
    controller.abort();
    assertEquals((await handle.status).signal, "SIGKILL");
    assertEquals(await waitUntilGone([pid]), []);
    reader.releaseLock();
  });

  Deno.test(`spawnBuilder() disposal kills a builder still running${suffix}`, async () => {
    let pid = 0;
    {
      await using handle = await spawnBuilder(sh("sleep 1000"));
      pid = handle.pid;
    }
    assertEquals(await waitUntilGone([pid]), []);
  });

  Deno.test(`runBuilder() returns the exit code and the log tail${suffix}`, async () => {
    const lines: string[] = [];
    const result = await runBuilder({
      ...sh("for i in 1 2 3 4 5; do echo line $i; done; printf 'a\\rb'; exit 2"),
      logLines: 3,
      onLine: (l) => lines.push(l),
    });
    assertEquals(result.outcome, { kind: "exited", code: 2 });
    assertEquals(result.tail, ["line 4", "line 5", "b"]);
    assertEquals(lines.length, 6);
    assertEquals(result.logBytes, 38);
  });

  Deno.test(`runBuilder() stops a builder at its timeout${suffix}`, async () => {
    // The clock starts once "start" is read, so that the kill comes after it on any machine.
    const started = Promise.withResolvers<void>();
    const result = await runBuilder({
      ...sh("echo start; exec sleep 1000"),
      logLines: 10,
      timeout: 0.3,
      onLine: () => started.resolve(),
      timers: timersFrom(started.promise),
    });
    assertEquals(result.outcome, { kind: "timed-out" });
    assertEquals(result.tail, ["start"]);
  });

  Deno.test(`runBuilder() stops a silent builder, not a chatty one${suffix}`, async () => {
    const silent = await runBuilder({
      ...sh("echo start; exec sleep 1000"),
      logLines: 10,
      maxSilentTime: 0.3,
      timeout: 3600,
    });
    assertEquals(silent.outcome, { kind: "silent-timeout" });
    // The chatty builder prints a line each time the test answers through a pipe; the test moves
    // a hand-driven clock 300 ms per line: 1.8 s in all, never 400 ms without output.
    const dir = Deno.makeTempDirSync();
    try {
      const fifo = `${dir}/fifo`;
      makeFifo(fifo);
      const clock = new FakeClock();
      const chatty = runBuilder({
        ...sh(`exec 3<${fifo}; for i in 1 2 3 4 5 6; do echo $i; read x <&3; done`),
        logLines: 10,
        maxSilentTime: 0.4,
        timers: clock,
        onLine: () => {
          clock.advance(300);
          void answer.then((w) => w.write(new TextEncoder().encode("\n")));
        },
      });
      const answer = openFifo(fifo, "write", chatty);
      assertEquals((await chatty).outcome, { kind: "exited", code: 0 });
      assertEquals(clock.now, 1800);
      (await answer).close();
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });

  Deno.test(`runBuilder() stops a builder past the log size limit${suffix}`, async () => {
    const result = await runBuilder({
      ...sh("exec yes", { PATH: "/usr/bin:/bin" }),
      logLines: 10,
      maxLogSize: 100_000,
    });
    assertEquals(result.outcome, { kind: "log-limit" });
    assert(result.logBytes > 100_000);
  });

  Deno.test(`runBuilder() reports cancellation${suffix}`, async () => {
    const controller = new AbortController();
    const run = runBuilder({
      ...sh("echo go; exec sleep 10"),
      logLines: 10,
      signal: controller.signal,
      onLine: () => controller.abort(),
    });
    assertEquals((await run).outcome, { kind: "cancelled" });
  });

  Deno.test(`spawnBuilder() refuses an unsandboxed builder path holding '='${suffix}`, async () => {
    await assertRejects(
      () => spawnBuilder({ ...sh("x"), program: "/a=b/sh" }),
      TypeError,
      "contains '='",
    );
  });
}

Deno.test("spawnHelper() gives the helper a stdin that closeInput() ends", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    makeFifo(`${dir}/stdin`);
    const helper = await spawnHelper([
      "/bin/sh",
      "-c",
      `readlink /proc/$$/fd/0 > ${dir}/stdin; cat > /dev/null; ` +
      `echo "stdin ended, env: $(env | wc -l)" > ${dir}/out`,
    ]);
    // Its stdin is a pipe whose other end only this process holds: cat waits until it closes.
    const stdin = await openFifo(`${dir}/stdin`, "read", helper.status);
    const pipe = (await readText(stdin.readable)).trim();
    assertMatch(pipe, /^pipe:\[\d+\]$/);
    const ours = () =>
      [...Deno.readDirSync("/proc/self/fd")].filter((e) => {
        try {
          return Deno.readLinkSync(`/proc/self/fd/${e.name}`) === pipe;
        } catch {
          return false; // the fd of the listing itself
        }
      }).length;
    assertEquals(ours(), 1, "this process holds the write end");
    assertEquals(
      [...Deno.readDirSync(dir)].map((e) => e.name),
      ["stdin"],
      "the helper waits for its input to end",
    );
    helper.closeInput();
    await helper.status;
    assertEquals(ours(), 0);
    // Only what sh itself sets (PWD, SHLVL, _ or OLDPWD): nothing of kiln's environment.
    const [, count] = Deno.readTextFileSync(`${dir}/out`).match(/env: (\d+)/)!;
    assert(Number(count) <= 4, `environment of ${count} variables`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
