/**
 * Real Nix (Debian's nix-bin 2.8) as the oracle: a throwaway store per test, so nothing touches a
 * real installation. Tests that need Nix call `nixAvailable()` and are ignored where it is absent
 * (CI installs nix-bin, so there they always run).
 */

import { join } from "node:path";

/** Whether `nix-store` runs here. */
export const nixAvailable: boolean = (() => {
  try {
    return new Deno.Command("nix-store", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

/** A throwaway Nix store: its store dir is `<root>/store`, logical and physical at once. */
export class NixSandbox {
  readonly root: string;
  readonly storeDir: string;
  readonly env: Record<string, string>;

  constructor(extraConfig = "") {
    // As root Nix builds as nixbld users, who must be able to reach the store: mode 755.
    this.root = Deno.makeTempDirSync({ prefix: "kiln-nix-" });
    Deno.chmodSync(this.root, 0o755);
    this.storeDir = join(this.root, "store");
    this.env = {
      NIX_STORE_DIR: this.storeDir,
      NIX_STATE_DIR: join(this.root, "state"),
      NIX_LOG_DIR: join(this.root, "log"),
      NIX_CONF_DIR: join(this.root, "etc"),
      NIX_CONFIG: "substituters =\nexperimental-features = nix-command\n" + extraConfig,
    };
  }

  /** Runs a Nix command; returns its stdout, throwing with its stderr when it fails. */
  async run(cmd: string, args: string[], stdin?: Uint8Array | string): Promise<string> {
    const out = await this.runRaw(cmd, args, stdin);
    if (out.code !== 0) {
      throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${out.stderr}`);
    }
    return out.stdout;
  }

  /** Runs a Nix command and returns its status and output, failing or not. */
  async runRaw(
    cmd: string,
    args: string[],
    stdin?: Uint8Array | string,
  ): Promise<{ code: number; stdout: string; stderr: string; bytes: Uint8Array }> {
    const child = new Deno.Command(cmd, {
      args,
      env: this.env,
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

  /** Removes the store (Nix makes it read-only first). */
  cleanup(): void {
    new Deno.Command("chmod", { args: ["-R", "u+w", this.root] }).outputSync();
    Deno.removeSync(this.root, { recursive: true });
  }
}
