/** kiln build's status line in a real terminal: tmux runs kiln, capture-pane reads the screen. */

import { join } from "node:path";
import { assert, assertStringIncludes } from "../_assert.ts";
import { addAll, withStore } from "./_drv.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

const tmuxAvailable = (() => {
  try {
    return new Deno.Command("tmux", { args: ["-V"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
})();

/** A tmux server of its own (socket in `dir`), one 160x20 window running `script`. */
class Terminal implements AsyncDisposable {
  readonly #socket: string;

  private constructor(socket: string) {
    this.#socket = socket;
  }

  static async start(dir: string, script: string): Promise<Terminal> {
    const file = join(dir, "session.sh");
    Deno.writeTextFileSync(file, script);
    const terminal = new Terminal(join(dir, "tmux.sock"));
    await terminal.#tmux("new-session", "-d", "-x", "160", "-y", "20", `sh ${file}; exec cat`);
    return terminal;
  }

  /** The screen's text. */
  screen(): Promise<string> {
    return this.#tmux("capture-pane", "-p");
  }

  /**
   * Waits until the screen shows `text`: the terminal says nothing when it draws, so it is read
   * again and again (for at most a minute, a bound that only a broken build reaches).
   */
  async waitFor(text: string): Promise<string> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const screen = await this.screen();
      if (screen.includes(text) || Date.now() > deadline) return screen;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#tmux("kill-server").catch(() => {});
  }

  async #tmux(...args: string[]): Promise<string> {
    const out = await new Deno.Command("tmux", {
      args: ["-S", this.#socket, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`tmux ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
    return new TextDecoder().decode(out.stdout);
  }
}

Deno.test({
  name:
    "kiln build on a terminal draws a status line with the running build, its last line and an ETA",
  ignore: !tmuxAvailable,
  fn: () =>
    withStore(async (store, set) => {
      const fifo = join(store.root, "go");
      new Deno.Command("mkfifo", { args: [fifo] }).outputSync();
      // Same name, so the first one's duration is the second one's history (the ETA).
      const quick = set.add({ name: "slow", script: "echo > $out" });
      const slow = set.add({
        name: "slow",
        script: `echo compiling stuff; read line < ${fifo}; echo > $out`,
      });
      await addAll(store, set);
      await store.ok(["build", "--no-sandbox", quick.path]);
      const env = Object.entries(store.env).map(([k, v]) => `export ${k}='${v}'`).join("\n");
      await using terminal = await Terminal.start(
        store.root,
        `${env}\n'${Deno.execPath()}' run --allow-all --quiet ${MAIN} build --no-sandbox ${slow.path}` +
          `; echo "exit $?"\n`,
      );
      const running = await terminal.waitFor("compiling stuff");
      const line = /\[0\/1 built, 1 running, 0 waiting \| ETA \d+s\] slow \d+s: compiling stuff/;
      assert(line.test(running), running);
      // The plan scrolls above the line; the build is on the line, not printed as `building`.
      assertStringIncludes(running, `this derivation will be built:\n  ${slow.path}\n[`);
      Deno.writeTextFileSync(fifo, "go\n");
      const done = await terminal.waitFor("exit 0");
      assertStringIncludes(done, `${slow.outputs.out}\nexit 0`);
      assert(!done.includes("running"), `the status line stayed:\n${done}`);
      assert(!done.includes("\x1b"), "escape codes on the screen");
    }),
});
