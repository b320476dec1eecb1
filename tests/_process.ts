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
