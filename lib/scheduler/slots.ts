/**
 * A pool of slots with its queue of waiting work: at most `capacity` items run at once, and the
 * next to run is the waiting item that comes first by the pool's order (a binary heap, so taking
 * the next is O(log n) however many wait). The worker keeps one pool for builds (`max-jobs`) and
 * one for substitutions (`max-substitution-jobs`).
 */

import { BinaryHeap } from "./_heap.ts";
import { InternalError } from "../sys/mod.ts";

export class SlotPool<T> {
  readonly #waiting: BinaryHeap<T>;
  #running = 0;

  /** `before(a, b)` is true when waiting `a` must start before waiting `b`. */
  constructor(readonly capacity: number, before: (a: T, b: T) => boolean) {
    if (!Number.isInteger(capacity) || capacity < 0) {
      throw new RangeError(`Slot count ${capacity} is not a non-negative integer`);
    }
    this.#waiting = new BinaryHeap(before);
  }

  /** Items holding a slot. */
  get running(): number {
    return this.#running;
  }

  /** Items waiting for a slot. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** Queues an item until a slot is free. */
  enqueue(item: T): void {
    this.#waiting.push(item);
  }

  /** Takes a slot for the first waiting item and returns it; undefined when full or idle. */
  take(): T | undefined {
    if (this.#running >= this.capacity || this.#waiting.size === 0) return undefined;
    this.#running++;
    return this.#waiting.pop();
  }

  /** Gives back a slot taken by `take`. */
  release(): void {
    if (this.#running === 0) throw new InternalError("slot released twice");
    this.#running--;
  }
}
