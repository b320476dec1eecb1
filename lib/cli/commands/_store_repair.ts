/**
 * What `kiln store verify --repair` does to a corrupt or missing path, as Nix's repairPath: fetch
 * it again from the substituters, and where that fails rebuild its deriver (when valid) in repair
 * mode, which needs the sandbox. Loaded only when there is something to repair.
 */

import { realise } from "../../scheduler/mod.ts";
import type { LocalStore } from "../../store/mod.ts";
import type { Config } from "../config.ts";
import { openDisplay } from "../display.ts";
import { openSubstituter, type SubstituterHandle } from "../substituters.ts";
import { realiseOptions } from "../build_settings.ts";

/** Repairs paths of `store`, opening the substituters once; dispose of it when done. */
export function makeRepairer(store: LocalStore, config: Config) {
  let handle: Promise<SubstituterHandle> | undefined;
  const substitute = async (path: string): Promise<boolean> => {
    if (config.settings.getList("substituters").length === 0) return false;
    handle ??= openSubstituter(store, config);
    const { substituter } = await handle;
    const outcome = await substituter.substitutePath(path, new AbortController().signal, {
      repair: true,
    });
    return outcome.status !== "failed";
  };
  return {
    async repair(path: string): Promise<void> {
      if (await substitute(path)) return;
      const deriver = store.queryPathInfo(path)?.deriver;
      if (deriver === undefined || !store.isValidPath(deriver)) {
        throw new Error(`cannot repair path '${path}'`);
      }
      await rebuild(store, config, deriver);
    },
    [Symbol.dispose]() {
      handle?.then((h) => h[Symbol.dispose](), () => {});
    },
  };
}

/** Rebuilds every output of `drvPath` whose contents are corrupt, as `kiln build --repair`. */
async function rebuild(store: LocalStore, config: Config, drvPath: string): Promise<void> {
  const { settings } = config;
  const display = openDisplay(undefined, false);
  try {
    await using run = realise(store, [{ drvPath }], {
      ...realiseOptions(config, settings, { rounds: 1 }),
      keepGoing: false,
      repair: true,
      onEvent: display.onEvent,
    });
    const outcome = await run.outcome;
    const result = outcome.status === "realised" ? outcome.results.get(drvPath) : undefined;
    if (result === undefined || result.status === "failed") {
      throw new Error(`cannot repair '${drvPath}': ${result?.message ?? "its build failed"}`);
    }
  } finally {
    display.close();
  }
}
