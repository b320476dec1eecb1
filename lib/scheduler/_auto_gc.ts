/**
 * Automatic collection, as Nix's `min-free` and `max-free`: before a run substitutes or builds,
 * and before each build, when the store's file system has less than `minFree` bytes available,
 * a collection frees up to `maxFree` minus what is available. A run's goals share one collection
 * at a time. The run's own paths are safe: they are its temporary roots.
 */

import { collectGarbage, type LivenessOptions, type LocalStore } from "../store/mod.ts";
import { availableBytes } from "./_disk_space.ts";

/** When to collect, and what stays alive. */
export interface AutoGcOptions extends LivenessOptions {
  /** Collect when fewer bytes than this are available; 0 (the default in Nix) never collects. */
  minFree: number;
  /** How many bytes a collection tries to make available. */
  maxFree: number;
}

/** One run's automatic collections. */
export class AutoGc {
  #running: Promise<void> | undefined;

  constructor(
    readonly store: LocalStore,
    readonly options: AutoGcOptions & { onMessage?: (text: string) => void },
  ) {}

  /** Collects when space is low; resolves once the collection (if any) is over. */
  ensureFree(): Promise<void> {
    this.#running ??= this.#collect().finally(() => this.#running = undefined);
    return this.#running;
  }

  async #collect(): Promise<void> {
    const { minFree, maxFree } = this.options;
    if (minFree === 0) return;
    const available = availableBytes(this.store.physicalPath(this.store.storeDir));
    if (available === undefined || available >= minFree || available >= maxFree) return;
    const maxFreed = maxFree - available;
    this.options.onMessage?.(`running auto-GC to free ${maxFreed} bytes`);
    const result = await collectGarbage(this.store, { ...this.options, maxFreed });
    this.options.onMessage?.(`auto-GC freed ${result.bytesFreed} bytes`);
  }
}
