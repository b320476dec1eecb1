/** superviseBuilder() with a scripted builder and a hand-driven clock: nothing spawns or sleeps. */

import {
  type BuilderHandle,
  type BuilderResult,
  type BuilderStatus,
  superviseBuilder,
  type SuperviseOptions,
} from "../../lib/sandbox/mod.ts";
import { assertEquals, assertRejects } from "../_assert.ts";
import { FakeClock } from "./_clock.ts";

class FakeBuilder {
  #output!: ReadableStreamDefaultController<Uint8Array>;
  #exit!: (status: BuilderStatus) => void;
  kills = 0;
  readonly handle: BuilderHandle;

  constructor() {
    const output = new ReadableStream<Uint8Array>({ start: (c) => void (this.#output = c) });
    const status = new Promise<BuilderStatus>((resolve) => (this.#exit = resolve));
    const kill = () => {
      this.kills++;
      this.exit({ code: null, signal: "SIGKILL" });
      return status.then(() => {});
    };
    this.handle = { pid: 1, output, status, kill, [Symbol.asyncDispose]: kill };
  }

  #closed = false;

  write(text: string): void {
    if (!this.#closed) this.#output.enqueue(new TextEncoder().encode(text));
  }

  exit(status: BuilderStatus): void {
    try {
      if (!this.#closed) this.#output.close();
    } catch {
      // the reader cancelled the stream
    }
    this.#closed = true;
    this.#exit(status);
  }
}

/** Lets queued stream and promise work run (no time passes). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

function start(
  options: Partial<SuperviseOptions> = {},
): { clock: FakeClock; builder: FakeBuilder; result: Promise<BuilderResult> } {
  const clock = new FakeClock();
  const builder = new FakeBuilder();
  const result = superviseBuilder(builder.handle, { logLines: 10, timers: clock, ...options });
  return { clock, builder, result };
}

Deno.test("superviseBuilder() reports a normal exit and the tail", async () => {
  const { builder, result } = start({ timeout: 10, maxSilentTime: 5 });
  builder.write("hello\nworld");
  await settle();
  builder.exit({ code: 1, signal: null });
  assertEquals(await result, {
    outcome: { kind: "exited", code: 1 },
    tail: ["hello", "world"],
    logBytes: 11,
  });
  assertEquals(builder.kills, 0);
});

Deno.test("superviseBuilder() reports a builder killed by a signal", async () => {
  const { builder, result } = start();
  builder.exit({ code: null, signal: "SIGSEGV" });
  assertEquals((await result).outcome, { kind: "signaled", signal: "SIGSEGV" });
});

Deno.test("superviseBuilder() resets the silence clock on every chunk", async () => {
  const { clock, builder, result } = start({ maxSilentTime: 2 });
  clock.advance(1500);
  builder.write("a");
  await settle();
  clock.advance(1500);
  builder.write("b");
  await settle();
  clock.advance(1999);
  await settle();
  assertEquals(builder.kills, 0);
  clock.advance(1);
  assertEquals((await result).outcome, { kind: "silent-timeout" });
  assertEquals(builder.kills, 1);
});

Deno.test("superviseBuilder() enforces the total timeout despite output", async () => {
  const { clock, builder, result } = start({ timeout: 3, maxSilentTime: 2 });
  for (let i = 0; i < 5; i++) {
    clock.advance(1000);
    builder.write("tick\n");
    await settle();
  }
  const done = await result;
  assertEquals(done.outcome, { kind: "timed-out" });
  assertEquals(done.tail, ["tick", "tick"]);
});

Deno.test("superviseBuilder() stops the builder at the log size limit", async () => {
  const { builder, result } = start({ maxLogSize: 5 });
  builder.write("1234\n");
  await settle();
  builder.write("5");
  const done = await result;
  assertEquals(done.outcome, { kind: "log-limit" });
  assertEquals(done.tail, ["1234"]);
  assertEquals(builder.kills, 1);
});

Deno.test("superviseBuilder() reports cancellation, also when aborted before it starts", async () => {
  const controller = new AbortController();
  const { builder, result } = start({ signal: controller.signal });
  controller.abort();
  assertEquals((await result).outcome, { kind: "cancelled" });
  assertEquals(builder.kills, 1);
  const early = start({ signal: AbortSignal.abort() });
  assertEquals((await early.result).outcome, { kind: "cancelled" });
});

Deno.test("superviseBuilder() ignores clocks once the builder has exited", async () => {
  const { clock, builder, result } = start({ timeout: 1 });
  builder.exit({ code: 0, signal: null });
  await settle();
  clock.advance(5000);
  assertEquals((await result).outcome, { kind: "exited", code: 0 });
  assertEquals(builder.kills, 0);
});

Deno.test("superviseBuilder() kills the builder when the log pipeline fails", async () => {
  const builder = new FakeBuilder();
  const logFile = new WritableStream<Uint8Array>({
    write: () => Promise.reject(new Error("disk full")),
  });
  const result = superviseBuilder(builder.handle, { logLines: 10, logFile });
  builder.write("x");
  await assertRejects(() => result, Error, "disk full");
  assertEquals(builder.kills, 1);
});
