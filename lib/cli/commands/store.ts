/** `kiln store add|path-info|sign|query|export|import|gc|...`: add, show, query, move, collect. */

import { parseHashAlgorithm, parseStorePath } from "../../hashing/mod.ts";
import { LocalStore, type PathInfo } from "../../store/mod.ts";
import { parseCommandArgs, runSubcommand, UsageError } from "../args.ts";
import { type Command, printJson, printLines } from "../command.ts";
import { exportCommand, importCommand, STORE_EXPORT_USAGE } from "./store_export.ts";
import { queryPaths, STORE_QUERY_USAGE } from "./store_query.ts";
import { signPaths, STORE_SIGN_USAGE } from "./store_sign.ts";
import { optimise, STORE_VERIFY_USAGE, verifyPaths } from "./store_verify.ts";
import { addRootCommand, deleteCommand, gcCommand, STORE_GC_USAGE } from "./store_gc.ts";

const USAGE = `Usage:
  kiln store add [--name NAME] PATH...
      copy each PATH (file, directory tree or symlink) into the store as 'nix-store --add'
      does (NAR serialisation, sha256); print one store path per line
  kiln store add --fixed ALGO [--recursive] [--name NAME] PATH...
      as 'nix-store --add-fixed [--recursive] ALGO PATH': the path is fixed by the ALGO hash of
      the file's contents (a regular file), or with --recursive of its NAR serialisation
  kiln store path-info [--json] [--recursive] PATH...
      what the store records for each valid PATH, with --recursive for their whole closure.
      Text form, one line per path in aligned columns: PATH  NAR-SIZE  NAR-HASH (SRI).
      --json prints one object keyed by path, as current Nix's 'nix path-info --json': ca,
      deriver, narHash (SRI), narSize, references, registrationTime, signatures, ultimate
${STORE_SIGN_USAGE}
${STORE_QUERY_USAGE}
${STORE_EXPORT_USAGE}
${STORE_VERIFY_USAGE}
${STORE_GC_USAGE}

PATH for path-info is a store path itself (<store dir>/<hash>-<name>), not a file inside one
nor a symlink to one. ALGO is md5, sha1, sha256 or sha512. NAME defaults to PATH's base name.`;

export const storeCommand: Command = {
  usage: USAGE,
  run: (args) =>
    runSubcommand("store", args, {
      add,
      "path-info": pathInfo,
      sign: signPaths,
      query: queryPaths,
      export: exportCommand,
      import: importCommand,
      verify: verifyPaths,
      optimise,
      gc: gcCommand,
      delete: deleteCommand,
      "add-root": addRootCommand,
    }),
};

async function add(args: string[]): Promise<number> {
  const { values, positionals, config } = parseCommandArgs(args, {
    name: { type: "string" },
    fixed: { type: "string" },
    recursive: { type: "boolean" },
  });
  if (positionals.length === 0) throw new UsageError("kiln store add needs at least one PATH");
  if (values.recursive && values.fixed === undefined) {
    throw new UsageError("--recursive needs --fixed ALGO");
  }
  const algorithm = values.fixed === undefined ? undefined : parseHashAlgorithm(values.fixed);
  const store = LocalStore.open(config());
  try {
    const lines: string[] = [];
    for (const src of positionals) {
      const info = await store.addPath(src, {
        name: values.name,
        fixed: algorithm !== undefined,
        algorithm,
        method: algorithm === undefined || values.recursive ? "nar" : "flat",
      });
      lines.push(info.path);
    }
    printLines(lines);
    return 0;
  } finally {
    store.close();
  }
}

function pathInfo(args: string[]): number {
  const { values, positionals, config } = parseCommandArgs(args, {
    json: { type: "boolean" },
    recursive: { type: "boolean" },
  });
  if (positionals.length === 0) {
    throw new UsageError("kiln store path-info needs at least one PATH");
  }
  const store = LocalStore.open(config());
  try {
    for (const path of positionals) parseStorePath(store.storeDir, path);
    const paths = values.recursive ? store.computeClosure(positionals) : [...new Set(positionals)];
    const infos = paths.map((path) => {
      const info = store.queryPathInfo(path);
      if (info === undefined) throw new RangeError(`Path '${path}' is not valid`);
      return info;
    });
    if (values.json) printJson(Object.fromEntries(infos.map((i) => [i.path, toJson(i)])));
    else printLines(renderTable(infos));
    return 0;
  } finally {
    store.close();
  }
}

/** The fields of current Nix's `nix path-info --json`, in its (sorted) order. */
function toJson(info: PathInfo): Record<string, unknown> {
  return {
    ca: info.ca ?? null,
    deriver: info.deriver ?? null,
    narHash: info.narHash.toString("sri"),
    narSize: info.narSize,
    references: info.references,
    registrationTime: info.registrationTime,
    signatures: info.signatures,
    ultimate: info.ultimate,
  };
}

function renderTable(infos: PathInfo[]): string[] {
  const pathWidth = Math.max(...infos.map((i) => i.path.length));
  const sizeWidth = Math.max(...infos.map((i) => String(i.narSize).length));
  return infos.map((i) =>
    `${i.path.padEnd(pathWidth)}  ${String(i.narSize).padStart(sizeWidth)}  ${
      i.narHash.toString("sri")
    }`
  );
}
