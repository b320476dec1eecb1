/** Runs `main.ts` as a user would, each test in its own temporary store. */

import { join } from "node:path";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** What a kiln run printed and returned. */
export interface KilnResult {
  code: number;
  stdout: string;
  stderr: string;
  bytes: Uint8Array;
}

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
  async run(args: string[], stdin?: Uint8Array | string): Promise<KilnResult> {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--quiet", MAIN, ...args],
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

  /** Runs kiln and returns its stdout, throwing with its stderr when it fails. */
  async ok(args: string[], stdin?: Uint8Array | string): Promise<string> {
    const r = await this.run(args, stdin);
    if (r.code !== 0) throw new Error(`kiln ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  cleanup(): void {
    new Deno.Command("chmod", { args: ["-R", "u+w", this.root] }).outputSync();
    Deno.removeSync(this.root, { recursive: true });
  }
}
