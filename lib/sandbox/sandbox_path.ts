/** Entries of Nix's `sandbox-paths` setting: `PATH`, `PATH=HOSTPATH`, a trailing `?` when optional. */

/** What Nix's `sandbox-paths` holds by default. */
export const DEFAULT_SANDBOX_PATHS: readonly string[] = ["/bin/sh"];

/** One `sandbox-paths` entry: where it shows in the sandbox, where it comes from on the host. */
export interface SandboxPath {
  sandboxPath: string;
  hostPath: string;
  /** A missing host path is skipped rather than an error (a trailing `?`). */
  optional: boolean;
}

/**
 * Parses one `sandbox-paths` entry as Nix does: a trailing `?` makes it optional, and the first
 * `=` splits the sandbox path from the host path (`/a=/b=c` shows `/b=c` at `/a`); without one
 * both are the same.
 */
export function parseSandboxPath(entry: string): SandboxPath {
  const optional = entry.endsWith("?");
  const spec = optional ? entry.slice(0, -1) : entry;
  const eq = spec.indexOf("=");
  if (eq < 0) return { sandboxPath: spec, hostPath: spec, optional };
  return { sandboxPath: spec.slice(0, eq), hostPath: spec.slice(eq + 1), optional };
}

/** The `sandbox-paths` setting's entries, parsed; entries with an empty sandbox path left out. */
export function sandboxPathsOf(entries: readonly string[] = DEFAULT_SANDBOX_PATHS): SandboxPath[] {
  return entries.map(parseSandboxPath).filter((entry) => entry.sandboxPath !== "");
}
