/**
 * Kills builders when kiln itself dies without cleaning up (SIGKILL, a crash). Builders run in
 * their own session (setsid), so nothing reaches them when kiln's process goes; sandboxed ones
 * have bwrap's `--die-with-parent`, unsandboxed ones have nothing. The watchdog is one small
 * shell per run that waits for EOF on a pipe from kiln (kiln is gone, or closed it), then SIGKILLs
 * the process group of every builder still listed in a file: `+PID` / `-PID` lines that kiln
 * writes synchronously as it starts and reaps builders, so that a builder is listed before kiln
 * can be killed without it (a write through the pipe would wait for kiln's event loop).
 */

import { type HelperHandle, spawnHelper } from "../sandbox/mod.ts";

const SCRIPT = `trap '' INT
cat >/dev/null
s=
while IFS= read -r l; do
  case $l in
    +*) s="$s \${l#+}" ;;
    -*) n=; for q in $s; do [ "$q" = "\${l#-}" ] || n="$n $q"; done; s=$n ;;
  esac
done < "$1"
for p in $s; do kill -9 "-$p" 2>/dev/null; done
rm -f "$1"
`;

/** A running watchdog; `close()` ends it (killing whatever is still listed). */
export class Watchdog {
  readonly #helper: HelperHandle;
  readonly #list: Deno.FsFile;
  readonly #encoder = new TextEncoder();
  readonly #listed = new Set<number>();
  #broken = false;

  private constructor(helper: HelperHandle, list: Deno.FsFile) {
    this.#helper = helper;
    this.#list = list;
  }

  /** Starts the watchdog shell; undefined when it cannot be started. */
  static async start(): Promise<Watchdog | undefined> {
    let path: string | undefined;
    try {
      path = makeListFile();
      const list = Deno.openSync(path, { append: true });
      try {
        return new Watchdog(
          await spawnHelper(["/bin/sh", "-c", SCRIPT, "kiln-watchdog", path]),
          list,
        );
      } catch (e) {
        list.close();
        throw e;
      }
    } catch {
      if (path !== undefined) Deno.removeSync(path);
      return undefined;
    }
  }

  /** Lists the builder process group led by `pid`. */
  add(pid: number): void {
    this.#listed.add(pid);
    this.#write(`+${pid}\n`);
  }

  /** Unlists `pid` once its builder has been reaped. */
  remove(pid: number): void {
    this.#listed.delete(pid);
    this.#write(`-${pid}\n`);
  }

  async close(): Promise<void> {
    // With nothing left to kill, the shell need not read through the whole run's list.
    if (this.#listed.size === 0) {
      try {
        this.#list.truncateSync(0);
      } catch {
        // then it reads the list through, which nets to nothing
      }
    }
    this.#list.close();
    this.#helper.closeInput();
    await this.#helper.status;
  }

  #write(line: string): void {
    if (this.#broken) return;
    try {
      this.#list.writeSync(this.#encoder.encode(line));
    } catch {
      this.#broken = true;
    }
  }
}

/**
 * The list's file, in memory (`/dev/shm`) where that is writable: appending to a file on a disk
 * file system costs each build ~0.1 ms twice over.
 */
function makeListFile(): string {
  try {
    return Deno.makeTempFileSync({ dir: "/dev/shm", prefix: "kiln-watchdog-" });
  } catch {
    return Deno.makeTempFileSync({ prefix: "kiln-watchdog-" });
  }
}
