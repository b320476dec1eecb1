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
  /** Resolves once the daemon has printed `text` on stderr; rejects if it stops first. */
  logged(text: string): Promise<void>;
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
  const waiters = new Set<{ text: string; resolve: () => void; reject: (e: Error) => void }>();
  const drained = (async () => {
    for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
      log += text;
      if (log.includes("listening on unix socket")) listening.resolve(true);
      for (const w of waiters) if (log.includes(w.text)) w.resolve();
    }
    listening.resolve(false); // stderr ended first: the daemon did not start
    for (const w of waiters) w.reject(new Error(`kiln daemon never printed '${w.text}': ${log}`));
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
      logged(text) {
        const { promise, resolve, reject } = Promise.withResolvers<void>();
        const waiter = { text, resolve, reject };
        waiters.add(waiter);
        if (log.includes(text)) resolve();
        // A limit no loaded machine comes near, so that a missing line fails instead of hanging.
        const limit = AbortSignal.timeout(30_000);
        limit.onabort = () => reject(new Error(`kiln daemon did not print '${text}' in 30 s`));
        return promise.finally(() => {
          limit.onabort = null;
          waiters.delete(waiter);
        });
      },
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

/** nix-instantiate of a derivation named `name` running `sh -c script`; returns its `.drv`. */
export async function instantiate(d: DaemonFixture, name: string, script: string): Promise<string> {
  const expr = join(d.store.root, `${name}.nix`);
  Deno.writeTextFileSync(
    expr,
    `derivation { name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh";
      args = [ "-c" "${script}" ]; }`,
  );
  return (await d.nixOk("nix-instantiate", [expr])).trim();
}
