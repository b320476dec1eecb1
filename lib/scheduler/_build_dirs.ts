/**
 * Build directories (`nix-build-<name>.drv-<random>` in the host's temporary directory), reused
 * within a run: a finished build's directory is emptied in the background and kept, and the next
 * build renames a kept one to its own name instead of making a new one. Making a directory costs
 * an inode, which on a file system that has just freed many (ext4 without a journal skips those)
 * takes milliseconds; renaming takes microseconds. A kept directory is empty, mode 0700, and the
 * run's own; one that cannot be emptied is removed instead. One spare is made ahead, in the
 * background, whenever none is kept, so that a chain of builds never waits for a directory.
 */

import { join } from "node:path";
import { removeTree } from "../store/mod.ts";

export class BuildDirs {
  readonly #tempDir: string;
  readonly #background: Set<Promise<void>> | undefined;
  readonly #kept: string[] = [];
  #making = false;

  /**
   * Directories go in `tempDir`. Without `background` (a set of work the run awaits before it
   * ends) nothing is kept: each build makes its directory and removal is immediate.
   */
  constructor(tempDir: string, background?: Set<Promise<void>>) {
    this.#tempDir = tempDir;
    this.#background = background;
  }

  /** A new, empty build directory for the derivation named `name`. */
  async take(name: string): Promise<string> {
    const prefix = `nix-build-${name}.drv-`;
    const kept = this.#kept.pop();
    if (this.#background && this.#kept.length === 0) this.#makeSpare();
    if (kept !== undefined) {
      const dir = join(this.#tempDir, prefix + crypto.randomUUID().slice(0, 16));
      try {
        Deno.renameSync(kept, dir);
        return dir;
      } catch {
        removeTree(kept); // taken away meanwhile, or the name exists: make one instead
      }
    }
    return await Deno.makeTempDir({ dir: this.#tempDir, prefix });
  }

  /** Gives back `dir`, which the build is done with, to be emptied and kept. */
  give(dir: string): void {
    if (this.#background === undefined) return removeTree(dir);
    this.#track(
      this.#empty(dir).then(
        () => void this.#kept.push(dir),
        () => removeTree(dir), // gone, or not to be emptied
      ).catch(() => {}), // then it is left behind, as Nix leaves a build dir it cannot remove
    );
  }

  /** Removes the kept directories; call once the run's background work is done. */
  close(): void {
    for (const dir of this.#kept.splice(0)) removeTree(dir);
  }

  #makeSpare(): void {
    if (this.#making) return;
    this.#making = true;
    this.#track(
      Deno.makeTempDir({ dir: this.#tempDir, prefix: "nix-build-spare-" })
        .then((dir) => void this.#kept.push(dir), () => {})
        .finally(() => this.#making = false),
    );
  }

  /** Listing and chmod are synchronous (a few microseconds; a hop to a thread costs more). */
  async #empty(dir: string): Promise<void> {
    for (const entry of Deno.readDirSync(dir)) {
      const path = join(dir, entry.name);
      // Read-only directories inside stop Deno.remove unless this is root: open them up then.
      await Deno.remove(path, { recursive: true }).catch(() => removeTree(path));
    }
    Deno.chmodSync(dir, 0o700); // as the builder may have left it
  }

  #track(work: Promise<void>): void {
    inBackground(this.#background!, work);
  }
}

/** Adds `work` (which never rejects) to `background` until it settles. */
export function inBackground(background: Set<Promise<void>>, work: Promise<void>): void {
  const tracked: Promise<void> = work.finally(() => background.delete(tracked));
  background.add(tracked);
}
