/** `kiln daemon`: Nix's worker protocol on a Unix socket, or on stdin and stdout. */

import { join } from "node:path";
import {
  type DaemonOptions,
  decideTrust,
  namePeer,
  serveConnection,
  systemAccounts,
  type TrustSettings,
  type UnixClient,
  UnixListener,
} from "../../daemon/mod.ts";
import { LocalStore } from "../../store/mod.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import { type Command, printStderr } from "../command.ts";
import { type Config, SETTINGS, Settings } from "../config.ts";
import { realiseOptions } from "../build_settings.ts";
import { readTrustedKeys } from "../substituters.ts";

const USAGE = `Usage:
  kiln daemon [--socket PATH]
      serve Nix's worker protocol (1.21 to 1.34) on a Unix socket, default
      <state dir>/daemon-socket/socket, to many clients at once, so that Nix's own tools
      (NIX_REMOTE=unix://PATH, --store unix://PATH) query, add to and build in the kiln store;
      SIGINT or SIGTERM stops it (running builds are cancelled, the socket removed).
  kiln daemon --stdio [--store URI]
      serve one client on stdin and stdout (what ssh-ng:// runs). URI is local?store=DIR&root=DIR
      (&state=DIR): the logical store dir, the store root and the state dir.
A socket client is trusted if its user (the kernel's word: SO_PEERCRED) matches trusted-users
(default root), refused unless it matches allowed-users (default *); names, @group and * as in
Nix. The --stdio client is the user running kiln.`;

const OPTIONS = {
  socket: { type: "string" },
  stdio: { type: "boolean" },
  store: { type: "string" },
} as const;

const VERSION = "2.8.0 (kiln 0.1.0)";
const KNOWN = new Set(SETTINGS.map((s) => s.name));

export const daemonCommand: Command = {
  usage: USAGE,
  async run(args) {
    const { values, positionals, config: getConfig } = parseCommandArgs(args, OPTIONS);
    if (positionals.length > 0) throw new UsageError("kiln daemon takes no arguments");
    if (values.stdio && values.socket !== undefined) {
      throw new UsageError("--stdio and --socket do not mix");
    }
    if (!values.stdio && values.store !== undefined) {
      throw new UsageError("--store goes with --stdio");
    }
    const config = getConfig();
    if (values.store !== undefined) applyStoreUri(config, values.store);
    const store = LocalStore.open(config);
    const stop = new AbortController();
    const options = daemonOptions(store, config, stop.signal);
    options.realise(new Map()); // a bad setting of the daemon's own is an error at its start
    const trust: TrustSettings = {
      trustedUsers: config.settings.getList("trusted-users"),
      allowedUsers: config.settings.getList("allowed-users"),
    };
    try {
      if (values.stdio) {
        const decision = decideTrust(accounts, namePeer(accounts, Deno.uid()!, Deno.gid()!), trust);
        if (!decision.allowed) throw new Error(decision.error);
        await serveConnection(
          {
            readable: Deno.stdin.readable,
            writable: Deno.stdout.writable,
            trusted: decision.trusted,
          },
          options,
        );
        return 0;
      }
      const path = values.socket ?? join(config.stateDir, "daemon-socket", "socket");
      if (config.storeRoot !== "/") {
        printStderr(
          `warning: the store is at '${
            join(config.storeRoot, config.storeDir)
          }', not at '${config.storeDir}': clients on this machine cannot read its paths`,
        );
      }
      await serveSocket(path, { options, stop, trust });
      return 0;
    } finally {
      store.close();
    }
  },
};

/** `local?store=DIR&root=DIR&state=DIR` (also `auto?...`), as nix-daemon's `--store`. */
function applyStoreUri(config: Config, uri: string): void {
  const q = uri.indexOf("?");
  const scheme = q < 0 ? uri : uri.slice(0, q);
  if (scheme !== "local" && scheme !== "auto") {
    throw new UsageError(`--store '${uri}': kiln's daemon serves only a local store`);
  }
  for (const [name, value] of new URLSearchParams(q < 0 ? "" : uri.slice(q + 1))) {
    if (name === "store") config.storeDir = value;
    else if (name === "root") config.storeRoot = value;
    else if (name === "state") config.stateDir = value;
    else throw new UsageError(`--store '${uri}': unknown parameter '${name}'`);
  }
}

function daemonOptions(store: LocalStore, config: Config, signal: AbortSignal): DaemonOptions {
  return {
    store,
    daemonVersion: VERSION,
    signal,
    trustedKeys: readTrustedKeys(config),
    requireSigs: config.settings.getBool("require-sigs"),
    trustedSubstituters: new Set([
      ...config.settings.getList("trusted-substituters"),
      ...config.settings.getList("substituters"),
    ]),
    realise(overrides) {
      const settings = new Settings();
      for (const { name } of SETTINGS) settings.set(name, config.settings.get(name));
      // Settings kiln does not know (Nix's own) are left out, as they mean nothing here.
      for (const [name, value] of overrides) if (KNOWN.has(name)) settings.set(name, value);
      return realiseOptions(config, settings, { rounds: 1 });
    },
  };
}

/**
 * Accepts clients on a Unix socket until SIGINT or SIGTERM; then stops accepting, removes the
 * socket, cancels running builds, closes the connections and waits for their sessions to end.
 * The socket is 0666 in a directory made as nix-daemon makes it: who may connect is decided per
 * client from its credentials.
 */
async function serveSocket(
  path: string,
  { options, stop, trust }: { options: DaemonOptions; stop: AbortController; trust: TrustSettings },
) {
  Deno.mkdirSync(join(path, ".."), { recursive: true });
  removeSocket(path); // one left by a daemon that did not stop cleanly
  const listener = UnixListener.listen(path);
  Deno.chmodSync(path, 0o666);
  const clients = new Set<UnixClient>();
  const sessions = new Set<Promise<void>>();
  const onSignal = () => {
    if (stop.signal.aborted) return;
    stop.abort(new DOMException("The daemon is stopping", "AbortError"));
    listener.close();
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  printStderr(`listening on unix socket ${path}`);
  try {
    for (let client = await listener.accept(); client; client = await listener.accept()) {
      const conn = client;
      clients.add(conn);
      const session = serveClient(conn, options, trust)
        .catch((e) => printStderr(`kiln daemon: connection closed: ${describe(e)}`))
        .finally(() => {
          clients.delete(conn);
          sessions.delete(session);
        });
      sessions.add(session);
    }
  } finally {
    listener.close();
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    removeSocket(path);
    for (const client of clients) client.shutdown();
    await Promise.all(sessions);
  }
}

const accounts = systemAccounts();

/** Serves `client` if its user may connect, trusted if it is a trusted user. */
async function serveClient(client: UnixClient, options: DaemonOptions, trust: TrustSettings) {
  const decision = decideTrust(
    accounts,
    namePeer(accounts, client.peer.uid, client.peer.gid),
    trust,
  );
  if (!decision.allowed) {
    printStderr(`kiln daemon: connection closed: ${decision.error}`);
    await client.readable.cancel();
    await client.writable.close();
    return;
  }
  await serveConnection({ ...client, trusted: decision.trusted }, options);
}

function removeSocket(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message.split("\n")[0] : String(e);
}
