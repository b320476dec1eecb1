/** `kiln store query`: what `nix-store --query` prints, with its flags. */

import { parseStorePath } from "../../hashing/mod.ts";
import {
  computeFsClosure,
  computeRequisites,
  listRoots,
  type LivenessOptions,
  LocalStore,
  type PathInfo,
  renderDotGraph,
  renderGraphMl,
  renderTree,
  topoSortPaths,
} from "../../store/mod.ts";
import { parseCommandArgs, UsageError } from "../args.ts";
import { gcLiveness } from "../build_settings.ts";
import { printLines } from "../command.ts";
import { unreachable } from "../../sys/mod.ts";

/** Usage lines for the `store` command's text. */
export const STORE_QUERY_USAGE = `  kiln store query QUERY [--use-output|-u] PATH...
      as 'nix-store --query': QUERY is one of --outputs (the default), --references,
      --referrers, --requisites|-R [--include-outputs], --referrers-closure, --deriver|-d,
      --valid-derivers, --tree, --graph (DOT), --graphml, --hash, --size, --closure-size (the
      NAR sizes of a path's closure added up), --roots (the roots that keep a path alive);
      -u applies it to a derivation's outputs instead of the .drv`;

const QUERIES = [
  "outputs",
  "references",
  "referrers",
  "requisites",
  "referrers-closure",
  "deriver",
  "valid-derivers",
  "tree",
  "graph",
  "graphml",
  "hash",
  "size",
  "closure-size",
  "roots",
] as const;

type Query = typeof QUERIES[number];

/** Runs `kiln store query ARGS`. */
export function queryPaths(args: string[]): number {
  const { values, positionals, config } = parseCommandArgs(args, {
    ...Object.fromEntries(QUERIES.map((q) => [q, { type: "boolean" } as const])),
    requisites: { type: "boolean", short: "R" },
    deriver: { type: "boolean", short: "d" },
    "include-outputs": { type: "boolean" },
    "use-output": { type: "boolean", short: "u" },
  });
  const flags = values as Record<string, boolean | undefined>;
  const chosen = QUERIES.filter((q) => flags[q]);
  if (chosen.length > 1) {
    throw new UsageError(`Query type '--${chosen[1]}' conflicts with '--${chosen[0]}'`);
  }
  const query: Query = chosen[0] ?? "outputs";
  if (positionals.length === 0) throw new UsageError("kiln store query needs at least one PATH");
  const conf = config();
  const store = LocalStore.open(conf);
  try {
    for (const path of positionals) parseStorePath(store.storeDir, path);
    const options = {
      useOutput: flags["use-output"] === true,
      includeOutputs: flags["include-outputs"] === true,
    };
    printLines(
      query === "roots"
        ? rootsOf(store, positionals, { ...options, ...gcLiveness(conf.settings) })
        : runQuery(store, query, positionals, options),
    );
    return 0;
  } finally {
    store.close();
  }
}

/**
 * `--roots`, as Nix 2.8's: the roots (`LINK -> PATH`) whose path is in the referrers' closure of
 * the arguments, that closure taken as the collector takes it (`keep-outputs`: a path's valid
 * derivers; `keep-derivations`: a derivation's valid outputs).
 */
function rootsOf(
  store: LocalStore,
  args: string[],
  options: { useOutput: boolean } & LivenessOptions,
): string[] {
  const starts = args.flatMap((a) =>
    options.useOutput && a.endsWith(".drv") ? outputsOf(store, a) : [a]
  );
  const keeping = computeFsClosure(starts, (path) => [
    ...store.queryReferrers(path).filter((r) => r !== path),
    ...(options.keepOutputs ? store.queryValidDerivers(path) : []),
    ...(options.keepDerivations !== false && path.endsWith(".drv")
      ? outputsOf(store, path).filter((p) => store.isValidPath(p))
      : []),
  ]);
  return listRoots(store, options).filter(([, path]) => keeping.has(path))
    .map(([link, path]) => `${link} -> ${path}`);
}

function outputsOf(store: LocalStore, drv: string): string[] {
  return [...store.queryDerivationOutputs(drv).values()].sort();
}

function runQuery(
  store: LocalStore,
  query: Exclude<Query, "roots">,
  args: string[],
  options: { useOutput: boolean; includeOutputs: boolean },
): string[] {
  const info = (path: string): PathInfo => {
    const found = store.queryPathInfo(path);
    if (found === undefined) throw new RangeError(`Path '${path}' is not valid`);
    return found;
  };
  const references = (path: string) => info(path).references;
  // Nix's maybeUseOutputs: a derivation stands for its outputs when asked to.
  const targets = (path: string, useOutput = options.useOutput) =>
    useOutput && path.endsWith(".drv") ? outputsOf(store, path) : [path];
  const allTargets = () => args.flatMap((a) => targets(a));
  const dependenciesFirst = (paths: Iterable<string>) => topoSortPaths(paths, references).reverse();
  switch (query) {
    case "outputs":
      return args.flatMap((a) => targets(a, true));
    case "references":
      return dependenciesFirst(allTargets().flatMap(references));
    case "referrers":
      return dependenciesFirst(allTargets().flatMap((p) => store.queryReferrers(p)));
    case "requisites":
      return dependenciesFirst(
        computeRequisites(
          allTargets(),
          references,
          options.includeOutputs
            ? (drv) => outputsOf(store, drv).filter((p) => store.isValidPath(p))
            : undefined,
        ),
      );
    case "referrers-closure":
      return dependenciesFirst(computeFsClosure(allTargets(), (p) => store.queryReferrers(p)));
    case "deriver":
      return args.map((a) => info(a).deriver ?? "unknown-deriver");
    case "valid-derivers":
      return dependenciesFirst(args.flatMap((a) => store.queryValidDerivers(a)));
    case "tree":
      return renderTree(args, references);
    case "graph":
      return [renderDotGraph(allTargets(), references).slice(0, -1)];
    case "graphml":
      return [renderGraphMl(allTargets(), references, (p) => info(p).narSize).slice(0, -1)];
    case "hash":
      return allTargets().map((p) => info(p).narHash.toNix32Prefixed());
    case "size":
      return allTargets().map((p) => String(info(p).narSize));
    case "closure-size":
      return allTargets().map((p) =>
        String(store.computeClosure([p]).reduce((sum, q) => sum + info(q).narSize, 0))
      );
    default:
      return unreachable(query);
  }
}
