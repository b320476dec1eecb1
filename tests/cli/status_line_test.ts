/** StatusLine: the events of a run drawn as one line, with an injected clock and terminal. */

import { duration, StatusLine } from "../../lib/cli/status_line.ts";
import type { RunEvent } from "../../lib/scheduler/mod.ts";
import { assert, assertEquals } from "../_assert.ts";

/** A status line writing into an array, redrawn only by events (its timer never fires here). */
function makeLine(printLogs: boolean, columns = 200) {
  let now = 1_000_000;
  const out: string[] = [];
  const line = new StatusLine({
    printLogs,
    write: (text) => out.push(text),
    columns: () => columns,
    now: () => now,
    interval: 1e9,
  });
  return {
    out,
    send: (...events: RunEvent[]) => events.forEach(line.listener),
    tick: (ms: number) => now += ms,
    close: () => line.close(),
    [Symbol.dispose]: () => line.close(),
    /** What the terminal's last line shows now. */
    shown: () => {
      const text = out.join("");
      return text.slice(text.lastIndexOf("\r") + 1).replace("\x1b[K", "");
    },
  };
}

/** The builds activity (id 1) and the build of `hello` (id 2) start. */
const HELLO_STARTS: RunEvent[] = [
  { type: "start", id: 1, activity: "builds", parent: 0, text: "" },
  { type: "start", id: 2, activity: "build", parent: 1, text: "building 'x'", name: "hello" },
];

Deno.test("StatusLine shows builds done/running/waiting, running builds with their last line, the ETA", () => {
  using t = makeLine(false);
  t.send(
    ...HELLO_STARTS,
    { type: "result", id: 1, result: "progress", done: 1, expected: 4, running: 1, failed: 0 },
    { type: "result", id: 2, result: "buildLogLine", line: "compiling\tmain.c" },
    { type: "result", id: 1, result: "estimate", remaining: 65_000, at: 1_000_000 },
  );
  t.tick(3000);
  t.send({ type: "result", id: 2, result: "buildLogLine", line: "linking" });
  assertEquals(t.shown(), "[1/4 built, 1 running, 2 waiting | ETA 1m02s] hello 3s: linking");
  assert(
    !t.out.join("").includes("compiling\tmain.c"),
    "a control character reached the terminal",
  );
});

Deno.test("StatusLine prints messages, and with logs builders' lines, above itself", () => {
  using t = makeLine(true);
  t.send(
    ...HELLO_STARTS,
    { type: "result", id: 1, result: "progress", done: 0, expected: 1, running: 1, failed: 0 },
    { type: "result", id: 2, result: "buildLogLine", line: "step 1" },
    { type: "msg", level: "warn", text: "something odd" },
  );
  const text = t.out.join("");
  // Each line above: the status line cleared, the line, the status line again.
  assert(text.includes("\r\x1b[Khello> step 1\n"), JSON.stringify(text));
  assert(text.includes("\r\x1b[Kwarning: something odd\n"), JSON.stringify(text));
  assertEquals(t.shown(), "[0/1 built, 1 running, 0 waiting] hello 0s: step 1");
  t.close();
  assertEquals(t.shown(), "", "close() clears the line");
});

Deno.test("StatusLine counts substitutions and the bytes they copied, and fits the terminal", () => {
  using t = makeLine(false, 30);
  t.send(
    { type: "start", id: 1, activity: "copyPaths", parent: 0, text: "" },
    { type: "start", id: 2, activity: "substitute", parent: 1, text: "", narSize: 3 * 1048576 },
    { type: "result", id: 1, result: "progress", done: 0, expected: 2, running: 1, failed: 0 },
    { type: "stop", id: 2 },
    { type: "result", id: 1, result: "progress", done: 1, expected: 2, running: 0, failed: 0 },
  );
  assertEquals(t.shown(), "[1/2 copied (3.0 MiB), 0 runn");
});

Deno.test("duration() words seconds, minutes and hours", () => {
  assertEquals([duration(400), duration(59_400), duration(61_000), duration(3_720_000)], [
    "0s",
    "59s",
    "1m01s",
    "1h02m",
  ]);
});
