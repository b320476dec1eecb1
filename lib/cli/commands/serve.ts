/** `kiln serve`: the local store as a binary cache over HTTP, until SIGINT or SIGTERM. */

import { openBuildLog } from "../../scheduler/mod.ts";
import { LocalStore } from "../../store/mod.ts";
import { parseWritableCompressionMethod, serveBinaryCache } from "../../substituter/mod.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import { type Command, printStderr } from "../command.ts";
import { readSecretKeys } from "../substituters.ts";

const USAGE = `Usage:
  kiln serve [--listen ADDR:PORT] [--compression none|zstd] [--priority N]
      serve the local store as a binary cache that Nix substitutes from (as nix-serve):
      /nix-cache-info, /<hash>.narinfo signed with the keys of 'secret-key-files',
      /nar/<hash>-<narhash>.nar (dumped as it is sent; --compression zstd compresses on the
      fly, default none), /log/<drv>. ADDR:PORT defaults to 127.0.0.1:5000; port 0 picks a
      free one. The address is printed on stderr; SIGINT or SIGTERM stops the server.`;

export const serveCommand: Command = {
  usage: USAGE,
  async run(args) {
    const { values, positionals, config } = parseCommandArgs(args, {
      listen: { type: "string" },
      compression: { type: "string" },
      priority: { type: "string" },
    });
    if (positionals.length > 0) throw new UsageError("kiln serve takes no arguments");
    const { hostname, port } = parseListen(values.listen ?? "127.0.0.1:5000");
    const priority = values.priority === undefined ? undefined : Number(values.priority);
    if (priority !== undefined && !Number.isInteger(priority)) {
      throw new UsageError(`--priority '${values.priority}' is not an integer`);
    }
    const secretKeys = readSecretKeys(config());
    const store = LocalStore.open(config());
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    try {
      const server = serveBinaryCache(store, {
        hostname,
        port,
        signal: stop.signal,
        secretKeys,
        priority,
        compression: parseWritableCompressionMethod(values.compression ?? "none"),
        readLog: (drvPath) => openBuildLog(config().stateDir, drvPath, store),
      });
      Deno.addSignalListener("SIGINT", onSignal);
      Deno.addSignalListener("SIGTERM", onSignal);
      const host = server.addr.hostname.includes(":")
        ? `[${server.addr.hostname}]`
        : server.addr.hostname;
      printStderr(`listening on http://${host}:${server.addr.port}`);
      await server.finished;
      return 0;
    } finally {
      Deno.removeSignalListener("SIGINT", onSignal);
      Deno.removeSignalListener("SIGTERM", onSignal);
      store.close();
    }
  },
};

function parseListen(text: string): { hostname: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):([0-9]+)$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--listen '${text}' is not ADDR:PORT`);
  return { hostname: m[1] ?? (m[2] || "0.0.0.0"), port };
}
