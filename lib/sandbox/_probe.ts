/** A backend's probe: runs a one-off command and reports whether it worked, else why not. */

export async function runProbe(
  program: string,
  args: string[],
  env?: Record<string, string>,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    // A one-off check, not a builder: spawn.ts stays the only place builders are started.
    const result = await new Deno.Command(program, {
      args,
      env,
      clearEnv: env !== undefined,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (result.success) return { ok: true };
    const message = new TextDecoder().decode(result.stderr).trim().split("\n")[0];
    const name = program.slice(program.lastIndexOf("/") + 1);
    return { ok: false, reason: message || `${name} exited with code ${result.code}` };
  } catch (error) {
    return { ok: false, reason: `cannot run ${program}: ${(error as Error).message}` };
  }
}
