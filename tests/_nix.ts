/**
 * Real Nix (Debian's nix-bin 2.8) as the oracle: a throwaway store per test, so nothing touches a
 * real installation. Tests that need Nix call `nixAvailable()` and are ignored where it is absent
 * (CI installs nix-bin, so there they always run).
 */

import { join } from "node:path";
import { removeTree } from "../lib/store/mod.ts";
import { type ProcessResult, runProcess } from "./_process.ts";

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
    this.root = Deno.makeTempDirSync({ prefix: "kiln-nix-" });
    this.storeDir = join(this.root, "store");
    this.env = {
      NIX_STORE_DIR: this.storeDir,
      NIX_STATE_DIR: join(this.root, "state"),
      NIX_LOG_DIR: join(this.root, "log"),
      NIX_CONF_DIR: join(this.root, "etc"),
      // No build users: Nix picks them through a lock in its state dir, which is each test's
      // own, so tests running at once (and other suites on the machine) would build as the same
      // nixbld user, and Nix kills every process of its build user before and after a build.
      NIX_CONFIG: "substituters =\nbuild-users-group =\nexperimental-features = nix-command\n" +
        extraConfig,
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
  runRaw(cmd: string, args: string[], stdin?: Uint8Array | string): Promise<ProcessResult> {
    return runProcess(cmd, args, { env: this.env, stdin });
  }

  /** Removes the store (Nix makes it read-only first). */
  cleanup(): void {
    removeTree(this.root);
  }
}
