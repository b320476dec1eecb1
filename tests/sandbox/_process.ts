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

/** Whether a process exists and is not a zombie. */
export function isRunning(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Waits (up to 2 s, polling) until none of `pids` runs; returns those still running. */
export async function waitUntilGone(pids: number[]): Promise<number[]> {
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    if (!pids.some(isRunning)) return [];
    await new Promise((r) => setTimeout(r, 20));
  }
  return pids.filter(isRunning);
}
