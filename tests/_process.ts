/** Running a command to its end from a test, with optional stdin: what kiln and Nix runs share. */

/** What a finished process printed and returned. */
export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout as bytes (a NAR, say). */
  bytes: Uint8Array;
}

/** Runs `cmd` with `args` and exactly `env`'s additions, feeding `stdin` when given. */
export async function runProcess(
  cmd: string,
  args: string[],
  options: { env: Record<string, string>; stdin?: Uint8Array | string },
): Promise<ProcessResult> {
  const { stdin } = options;
  const child = new Deno.Command(cmd, {
    args,
    env: options.env,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const feed = async () => {
    if (stdin === undefined) return;
    const w = child.stdin.getWriter();
    await w.write(typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin);
    await w.close();
  };
  // Feed and drain together: a child that writes before it has read all of stdin must not block.
  const [, out] = await Promise.all([feed(), child.output()]);
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
    bytes: out.stdout,
  };
}

/** Makes a named pipe at `path` that anyone may open (a sandboxed builder too). */
export function makeFifo(path: string): void {
  const out = new Deno.Command("mkfifo", { args: ["-m", "666", path], stderr: "piped" })
    .outputSync();
  if (!out.success) throw new Error(`mkfifo failed: ${new TextDecoder().decode(out.stderr)}`);
}

/**
 * Opens the named pipe at `path` for reading or writing, which waits for the other end to be
 * opened: by a process whose end is `peerGone`. When that settles first, the open is undone and
 * this rejects, so that a test fails instead of waiting for ever.
 */
export async function openFifo(
  path: string,
  mode: "read" | "write",
  peerGone: Promise<unknown>,
): Promise<Deno.FsFile> {
  const opening = Deno.open(path, mode === "read" ? { read: true } : { write: true });
  const gone = peerGone.then(() => undefined, () => undefined);
  const file = await Promise.race([opening, gone]);
  if (file) return file;
  // Our open waits for a peer: be that peer (it returns at once), then close both ends.
  Deno.openSync(path, mode === "read" ? { write: true } : { read: true }).close();
  (await opening).close();
  throw new Error(`Nothing opened '${path}' before the process that was to open it ended`);
}

/**
 * Polls `check` (every 10 ms) until it holds, for something that no event announces and that
 * takes milliseconds: it fails only after a limit (30 s) no loaded machine comes near.
 */
export async function waitFor(what: string, check: () => boolean): Promise<void> {
  const limit = Date.now() + 30_000;
  while (!check()) {
    if (Date.now() > limit) throw new Error(`Timed out after 30 s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * How many lock requests wait (`->` in /proc/locks) on the files in `dir`: a process blocked in
 * `lockPaths` shows there, which proves that it waits for another holder.
 */
export function lockWaiters(dir: string): number {
  const files = new Set<string>();
  for (const entry of Deno.readDirSync(dir)) {
    const { dev, ino } = Deno.statSync(`${dir}/${entry.name}`);
    // /proc/locks names a file MAJOR:MINOR:INODE, the device numbers in hex.
    const major = ((dev >> 8) & 0xfff) | (Math.floor(dev / 2 ** 32) & ~0xfff);
    const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    const hex = (n: number) => n.toString(16).padStart(2, "0");
    files.add(`${hex(major)}:${hex(minor)}:${ino}`);
  }
  return Deno.readTextFileSync("/proc/locks").split("\n")
    .filter((line) => line.includes("->") && line.split(/\s+/).some((f) => files.has(f)))
    .length;
}

/** Reads text until it includes `wanted` or the stream ends; returns what it read. */
export async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  wanted: string,
): Promise<string> {
  let text = "";
  while (!text.includes(wanted)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  return text;
}
