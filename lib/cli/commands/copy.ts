/** `kiln copy --to URL | --from URL`: closures into a binary cache, or out of one into the store. */

import { parseStorePath } from "../../hashing/mod.ts";
import { type BuildResult, type GoalGraph, runGoals } from "../../scheduler/mod.ts";
import { LocalStore } from "../../store/mod.ts";
import {
  BinaryCache,
  copyToBinaryCache,
  parseWritableCompressionMethod,
  type SubstitutionNode,
} from "../../substituter/mod.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import type { Config } from "../config.ts";
import { type Command, printStderr } from "../command.ts";
import { openSubstituter, readSecretKeyFile, readSecretKeys } from "../substituters.ts";
import { InternalError } from "../../sys/mod.ts";

const USAGE = `Usage:
  kiln copy --to URL [--no-recursive] [--compression METHOD] PATH...
      copy PATHs and their closures into the binary cache at URL (file:///dir, or http(s)://
      written with PUT), as 'nix copy --to'; paths the cache has are skipped. NARs are
      compressed with METHOD (zstd, xz, none, gzip, br; default: the URL's ?compression=,
      else the 'compression' setting, zstd) and narinfos signed with the keys of
      'secret-key-files' and of the URL's ?secret-key=FILE
  kiln copy --from URL [--no-recursive] [--no-check-sigs] PATH...
      import PATHs and their closures from the binary cache at URL into the local store, each
      NAR checked against its narinfo; narinfos must be signed by a key in
      'trusted-public-keys' unless 'require-sigs' is false or --no-check-sigs is given

--no-recursive copies only the PATHs themselves (with --from their references must be valid).
Progress ('copying path ...') goes to stderr.`;

export const copyCommand: Command = {
  usage: USAGE,
  async run(args) {
    const { values, positionals, config } = parseCommandArgs(args, {
      to: { type: "string" },
      from: { type: "string" },
      "no-recursive": { type: "boolean" },
      "no-check-sigs": { type: "boolean" },
      compression: { type: "string" },
    });
    if ((values.to === undefined) === (values.from === undefined)) {
      throw new UsageError("kiln copy needs exactly one of --to URL and --from URL");
    }
    if (positionals.length === 0) throw new UsageError("kiln copy needs at least one PATH");
    const recursive = !values["no-recursive"];
    const store = LocalStore.open(config());
    try {
      for (const path of positionals) parseStorePath(store.storeDir, path);
      if (values.to !== undefined) {
        if (values["no-check-sigs"]) throw new UsageError("--no-check-sigs goes with --from");
        return await copyTo(store, config(), values.to, positionals, {
          recursive,
          compression: values.compression,
        });
      }
      if (values.compression !== undefined) throw new UsageError("--compression goes with --to");
      return await copyFrom(store, config(), values.from!, positionals, {
        recursive,
        checkSigs: !values["no-check-sigs"],
      });
    } finally {
      store.close();
    }
  },
};

async function copyTo(
  store: LocalStore,
  config: Config,
  url: string,
  paths: string[],
  options: { recursive: boolean; compression?: string },
): Promise<number> {
  const cache = BinaryCache.open(url, {
    storeDir: store.storeDir,
    connectTimeoutMs: config.settings.getInt("connect-timeout") * 1000 || 5000,
  });
  const keyFile = cache.params.secretKeyFile;
  const secretKeys = [
    ...readSecretKeys(config),
    ...(keyFile === undefined ? [] : [readSecretKeyFile(keyFile)]),
  ];
  const compression = parseWritableCompressionMethod(
    options.compression ?? cache.params.compression ?? config.settings.get("compression"),
  );
  await copyToBinaryCache(store, cache, paths, {
    recursive: options.recursive,
    compression,
    secretKeys,
    onCopied: (path) => printStderr(`copying path '${path}' to '${cache.url}'`),
  });
  return 0;
}

async function copyFrom(
  store: LocalStore,
  config: Config,
  url: string,
  paths: string[],
  options: { recursive: boolean; checkSigs: boolean },
): Promise<number> {
  using handle = await openSubstituter(store, config, {
    urls: [url],
    requireSigs: options.checkSigs ? undefined : false,
  });
  const substituter = handle.substituter;
  if (substituter.caches.length === 0) throw new Error(`Binary cache '${url}' is not usable`);
  let graph: GoalGraph;
  if (options.recursive) {
    const plan = await substituter.planSubstitution(paths);
    const [missing, why] = [...plan.missing][0] ?? [];
    if (missing !== undefined) {
      throw new RangeError(
        why.startsWith("path ") ? `Path '${missing}' is not in binary cache '${url}'` : why,
      );
    }
    graph = plan.graph;
  } else {
    const nodes = paths.map((p): [string, SubstitutionNode] => [p, {
      kind: "substitute",
      dependencies: [],
      valid: store.isValidPath(p),
    }]);
    graph = new Map(nodes);
  }
  const results = await runGoals(graph, paths, {
    build: (drv) => Promise.reject(new InternalError(`kiln copy cannot build '${drv}'`)),
    substitute: (path, signal) => substituter.substitutePath(path, signal),
    maxSubstitutionJobs: config.settings.getInt("max-substitution-jobs"),
    onEvent: (event) => {
      if (event.type === "started") printStderr(`copying path '${event.path}' from '${url}'`);
    },
  });
  return reportFailures(results.values());
}

/** Prints each goal that failed by itself; 1 when any failed. */
function reportFailures(results: Iterable<BuildResult>): number {
  let failed = false;
  for (const result of results) {
    if (result.status !== "failed") continue;
    failed = true;
    if (result.reason !== "dependency-failed") printStderr(`error: ${result.message}`);
  }
  return failed ? 1 : 0;
}
