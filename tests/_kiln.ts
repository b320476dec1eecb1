/** Runs `main.ts` as a user would, each test in its own temporary store. */

import { join } from "node:path";
import { removeTree } from "../lib/store/mod.ts";
import { type ProcessResult, runProcess } from "./_process.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** What a kiln run printed and returned. */
export type KilnResult = ProcessResult;

/** A private kiln store: `storeDir` is logical, the files live under `root`. */
export class KilnStore {
  readonly root: string;
  readonly env: Record<string, string>;

  constructor(readonly storeDir = "/nix/store", root?: string) {
    this.root = root ?? Deno.makeTempDirSync({ prefix: "kiln-test-" });
    this.env = {
      KILN_STORE_DIR: storeDir,
      KILN_STORE_ROOT: join(this.root, "root"),
      KILN_STATE_DIR: join(this.root, "state"),
      XDG_CONFIG_HOME: join(this.root, "config"),
    };
  }

  /** Where logical store path `path` is on disk. */
  physical(path: string): string {
    return join(this.env.KILN_STORE_ROOT, path);
  }

  /** Runs kiln with `args`, feeding `stdin` when given. */
  run(args: string[], stdin?: Uint8Array | string): Promise<KilnResult> {
    const kilnArgs = ["run", "--allow-all", "--quiet", MAIN, ...args];
    return runProcess(Deno.execPath(), kilnArgs, { env: this.env, stdin });
  }

  /** Starts kiln with `args`, its output piped: for tests that signal it while it runs. */
  spawn(args: string[]): Deno.ChildProcess {
    return new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--quiet", MAIN, ...args],
      env: this.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  }

  /** Runs kiln and returns its stdout, throwing with its stderr when it fails. */
  async ok(args: string[], stdin?: Uint8Array | string): Promise<string> {
    const r = await this.run(args, stdin);
    if (r.code !== 0) throw new Error(`kiln ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  cleanup(): void {
    removeTree(this.root);
  }
}
