/**
 * Kills builders when kiln itself dies without cleaning up (SIGKILL, a crash). Builders run in
 * their own session (setsid), so nothing reaches them when kiln's process goes; sandboxed ones
 * have bwrap's `--die-with-parent`, unsandboxed ones have nothing. The watchdog is one small
 * shell per run reading `+PID` / `-PID` lines on a pipe from kiln; when the pipe reaches EOF (kiln
 * is gone, or closed it) it SIGKILLs the process group of every builder still listed.
 */

const SCRIPT = `trap '' INT
s=
while IFS= read -r l; do
  case $l in
    +*) s="$s \${l#+}" ;;
    -*) n=; for q in $s; do [ "$q" = "\${l#-}" ] || n="$n $q"; done; s=$n ;;
  esac
done
for p in $s; do kill -9 "-$p" 2>/dev/null; done
`;

/** A running watchdog; `close()` ends it (killing whatever is still listed). */
export class Watchdog {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #encoder = new TextEncoder();
  #broken = false;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
  }

  /** Starts the watchdog shell; undefined when it cannot be started. */
  static start(): Watchdog | undefined {
    try {
      const child = new Deno.Command("/bin/sh", {
        args: ["-c", SCRIPT],
        stdin: "piped",
        stdout: "null",
        stderr: "null",
        clearEnv: true,
      }).spawn();
      return new Watchdog(child);
    } catch {
      return undefined;
    }
  }

  /** Lists the builder process group led by `pid`. */
  add(pid: number): void {
    this.#send(`+${pid}\n`);
  }

  /** Unlists `pid` once its builder has been reaped. */
  remove(pid: number): void {
    this.#send(`-${pid}\n`);
  }

  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    await this.#child.status;
  }

  #send(line: string): void {
    if (this.#broken) return;
    this.#writer.write(this.#encoder.encode(line)).catch(() => {
      this.#broken = true;
    });
  }
}
