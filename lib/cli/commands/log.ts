/** `kiln log PATH`: print the stored build log of a derivation or of one of its outputs. */

import { openBuildLog } from "../../scheduler/mod.ts";
import { LocalStore } from "../../store/mod.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import type { Command } from "../command.ts";

const USAGE = `Usage: kiln log PATH

Prints the log of the last build of PATH, a .drv store path or an output path built by kiln
(found through its deriver), decompressed.`;

export const logCommand: Command = {
  usage: USAGE,
  async run(args) {
    const { positionals, config: getConfig } = parseCommandArgs(args, {});
    if (positionals.length !== 1) throw new UsageError("kiln log needs exactly one PATH");
    const [path] = positionals;
    const config = getConfig();
    const store = LocalStore.open(config);
    let log;
    try {
      const drvPath = path.endsWith(".drv") ? path : store.queryPathInfo(path)?.deriver;
      log = drvPath === undefined ? undefined : openBuildLog(config.stateDir, drvPath, store);
    } finally {
      store.close();
    }
    if (log === undefined) throw new TypeError(`build log of '${path}' is not available`);
    await log.pipeTo(Deno.stdout.writable, { preventClose: true });
    return 0;
  },
};
