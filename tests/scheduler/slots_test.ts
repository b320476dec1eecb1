import { assertEquals, assertThrows } from "../_assert.ts";
import { SlotPool } from "../../lib/scheduler/mod.ts";
import { InternalError } from "../../lib/sys/mod.ts";

Deno.test("SlotPool hands out at most capacity slots, first in the pool's order", () => {
  const pool = new SlotPool<number>(2, (a, b) => a > b);
  for (const n of [3, 9, 1, 7, 5, 8, 2]) pool.enqueue(n);
  assertEquals([pool.take(), pool.take(), pool.take()], [9, 8, undefined]);
  assertEquals([pool.running, pool.waiting], [2, 5]);
  pool.release();
  assertEquals(pool.take(), 7);
  pool.release();
  pool.release();
  const rest: number[] = [];
  for (let n = pool.take(); n !== undefined; n = pool.take()) rest.push(n), pool.release();
  assertEquals(rest, [5, 3, 2, 1]);
  assertEquals([pool.running, pool.waiting], [0, 0]);
});

Deno.test("SlotPool keeps heap order over many random items", () => {
  const pool = new SlotPool<number>(1, (a, b) => a < b);
  const items = Array.from({ length: 2000 }, (_, i) => (i * 7919) % 2003);
  for (const n of items) pool.enqueue(n);
  const out: number[] = [];
  for (let n = pool.take(); n !== undefined; n = pool.take()) out.push(n), pool.release();
  assertEquals(out, [...items].sort((a, b) => a - b));
});

Deno.test("SlotPool rejects a bad capacity and a release without a take", () => {
  assertThrows(() => new SlotPool(-1, () => true), RangeError, "Slot count -1");
  assertThrows(
    () => new SlotPool(1, () => true).release(),
    InternalError,
    "Internal error: slot released twice",
  );
});
