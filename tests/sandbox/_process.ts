/** Helpers for tests that run real builder processes. */

/** Reads a whole stream as text. */
export async function readText(stream: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(stream).text();
}

/** Reads lines from a stream until `count` have arrived; the rest of the stream stays unread. */
export async function readLines(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  count: number,
): Promise<string[]> {
  let text = "";
  const decoder = new TextDecoder();
  while (text.split("\n").length <= count) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  return text.split("\n").slice(0, count);
}

/** Whether a process exists and is not a zombie (exited, not yet reaped). */
export function isRunning(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

const libc = Deno.dlopen("libc.so.6", {
  syscall: { parameters: ["i64", "i64", "i64"], result: "i64" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  close: { parameters: ["i32"], result: "i32" },
});
const SYS_PIDFD_OPEN = 434; // the same number on every architecture
const POLLIN = 1;

/**
 * Waits until none of `pids` runs, on each one's pidfd (readable once the process has exited);
 * returns those still running after 30 s, a limit no loaded machine comes near.
 */
export async function waitUntilGone(pids: number[]): Promise<number[]> {
  const limit = Date.now() + 30_000;
  const left: number[] = [];
  for (const pid of pids) {
    const fd = Number(libc.symbols.syscall(BigInt(SYS_PIDFD_OPEN), BigInt(pid), 0n));
    if (fd < 0) continue; // no such process (ESRCH): gone and reaped
    try {
      // struct pollfd: int fd, short events, short revents
      const pollfd = new Uint8Array(8);
      new DataView(pollfd.buffer).setInt32(0, fd, true);
      new DataView(pollfd.buffer).setInt16(4, POLLIN, true);
      let ready = -1; // -1: interrupted (EINTR), poll again
      while (ready < 0 && Date.now() < limit) {
        ready = await libc.symbols.poll(pollfd, 1n, Math.max(0, limit - Date.now()));
      }
      if (ready !== 1) left.push(pid);
    } finally {
      libc.symbols.close(fd);
    }
  }
  return left;
}
