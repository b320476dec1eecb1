/** A `kiln daemon --socket` over a fresh build store, and Nix 2.8's tools as its clients. */

import { join } from "node:path";
import { KilnStore } from "../_kiln.ts";
import { type ProcessResult, runProcess } from "../_process.ts";
import { makeBuildStore } from "./_drv.ts";

/** A running daemon and how to run Nix against it. */
export interface DaemonFixture {
  store: KilnStore;
  socket: string;
  /** The environment that points Nix's tools at the daemon. */
  env: Record<string, string>;
  /** Runs a Nix program with the daemon as its store. */
  nix(cmd: string, args: string[], stdin?: string): Promise<ProcessResult>;
  /** Runs a Nix program; returns its stdout, throwing with its stderr when it fails. */
  nixOk(cmd: string, args: string[], stdin?: string): Promise<string>;
  /** What the daemon printed on stderr so far. */
  log(): string;
}

/**
 * Starts `kiln daemon --socket` on a fresh build store (store root `/`, so Nix's client reads its
 * paths where they are), waits for it to listen, runs `fn`, then stops it with SIGTERM and checks
 * that it exited cleanly and removed its socket. `config` is added to the daemon's kiln.conf.
 */
export async function withDaemon(
  fn: (daemon: DaemonFixture) => Promise<void>,
  config = "",
): Promise<void> {
  const store = makeBuildStore();
  store.env.KILN_CONFIG += config;
  const socket = join(store.root, "daemon.sock");
  const child = store.spawn(["daemon", "--socket", socket]);
  let log = "";
  const listening = Promise.withResolvers<boolean>();
  const drained = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      log += text;
      if (log.includes("listening on unix socket")) listening.resolve(true);
    }
    listening.resolve(false); // stderr ended first: the daemon did not start
  })();
  const env = {
    NIX_REMOTE: `unix://${socket}`,
    NIX_STORE_DIR: store.storeDir,
    NIX_STATE_DIR: join(store.root, "nix-state"),
    NIX_LOG_DIR: join(store.root, "nix-log"),
    NIX_CONF_DIR: join(store.root, "nix-etc"),
    NIX_CONFIG: "substituters =\nexperimental-features = nix-command\n",
  };
  const nix = (cmd: string, args: string[], stdin?: string) =>
    runProcess(cmd, args, { env, stdin });
  let status: Deno.CommandStatus;
  let socketLeft: boolean;
  try {
    if (!(await listening.promise)) throw new Error(`kiln daemon did not start: ${log}`);
    await fn({
      store,
      socket,
      env,
      nix,
      async nixOk(cmd, args, stdin) {
        const r = await nix(cmd, args, stdin);
        if (r.code !== 0) {
          throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
        }
        return r.stdout;
      },
      log: () => log,
    });
  } finally {
    child.kill("SIGTERM");
    await drained;
    status = await child.status;
    socketLeft = await Deno.lstat(socket).then(() => true, () => false);
    store.cleanup();
  }
  if (status.code !== 0) throw new Error(`kiln daemon exited with ${status.code}: ${log}`);
  if (socketLeft) throw new Error("kiln daemon left its socket behind");
}
