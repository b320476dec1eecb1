/**
 * The builder's environment and the files Nix writes into the build directory before it starts
 * the builder (Nix 2.8 `initEnv`, `initTmpDir`, `writeStructuredAttrs`, exportReferencesGraph).
 * Pure: the caller writes `files` into the build directory and queries the store for closures.
 */

import { type Derivation, STRUCTURED_ATTRS_KEY } from "../derivation/mod.ts";
import { encodeNixBase32, type Hash, hashBytes } from "../hashing/mod.ts";
import {
  compareUtf8,
  dumpJson,
  getJsonKey,
  isJsonObject,
  type JsonObject,
  type JsonValue,
  makeJsonObject,
  parseJson,
} from "./_json.ts";

/** What the store knows about one path of an exported references graph. */
export interface ExportedPathInfo {
  path: string;
  narHash: Hash;
  narSize: number;
  references: string[];
  /** Rendered content address, when the path has one. */
  ca?: string;
  /** Sum of the NAR sizes of the path's closure. */
  closureSize: number;
}

export interface BuildEnvironmentOptions {
  /** Logical store directory (`NIX_STORE`). */
  storeDir: string;
  /** The build directory as the builder sees it (`/build` in the sandbox). */
  buildDir: string;
  /** `NIX_BUILD_CORES`, passed verbatim as Nix 2.8 does (0 stays "0"). */
  cores: number;
  /** Output name -> the path the builder writes it to; output placeholders are rewritten to it. */
  outputPaths: Map<string, string>;
  /** Fixed-output builds get `NIX_OUTPUT_CHECKED` and the `impureEnvVars`. */
  fixedOutput: boolean;
  /** Where `impureEnvVars` values come from (the daemon's environment); missing ones are "". */
  impureEnv?: Record<string, string>;
  /**
   * The closures asked for by `exportReferencesGraph` (see `parseExportReferencesGraph`), name ->
   * every path of the closure (with the outputs' closures of any .drv in it).
   */
  referenceGraphs?: Map<string, ExportedPathInfo[]>;
}

export interface BuildEnvironment {
  /** The complete environment of the builder (nothing is inherited). */
  env: Record<string, string>;
  /** The builder's arguments, output placeholders rewritten. */
  args: string[];
  /** File name in the build directory -> contents. */
  files: Map<string, string>;
}

const HOME_DIR = "/homeless-shelter";
const SH_VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const GRAPH_FILE_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** `/<nix32(sha256("nix-output:<name>"))>`, the placeholder `builtins.placeholder` returns. */
export function hashPlaceholder(outputName: string): string {
  let placeholder = placeholders.get(outputName);
  if (placeholder === undefined) {
    placeholder = "/" + encodeNixBase32(hashBytes("sha256", `nix-output:${outputName}`).bytes);
    placeholders.set(outputName, placeholder);
  }
  return placeholder;
}

/** Every build computes those of its outputs: `out`, `dev`, ... over and over. */
const placeholders = new Map<string, string>();

/** The name of the file that carries `passAsFile` attribute `name`. */
export function passAsFileName(name: string): string {
  return ".attr-" + encodeNixBase32(hashBytes("sha256", name).bytes);
}

/** Computes the builder's environment, arguments and build-directory files. */
export function makeBuildEnvironment(
  drv: Derivation,
  options: BuildEnvironmentOptions,
): BuildEnvironment {
  const rewrites = [...options.outputPaths].map(([name, path]) =>
    [hashPlaceholder(name), path] as const
  );
  const rewrite = (s: string) => rewrites.reduce((acc, [from, to]) => acc.replaceAll(from, to), s);
  const structured = parseStructuredAttrs(drv);
  const top = options.buildDir;
  const env = new Map<string, string>([
    ["PATH", "/path-not-set"],
    ["HOME", HOME_DIR],
    ["NIX_STORE", options.storeDir],
    ["NIX_BUILD_CORES", String(options.cores)],
  ]);
  const files = new Map<string, string>();

  if (!structured) {
    const passAsFile = new Set(tokenize(drv.env.get("passAsFile") ?? ""));
    for (const [key, value] of [...drv.env].sort(([a], [b]) => compareUtf8(a, b))) {
      if (!passAsFile.has(key)) {
        env.set(key, value);
      } else {
        const name = passAsFileName(key);
        files.set(name, rewrite(value));
        env.set(key + "Path", `${top}/${name}`);
      }
    }
  }
  for (const key of ["NIX_BUILD_TOP", "TMPDIR", "TEMPDIR", "TMP", "TEMP", "PWD"]) {
    env.set(key, top);
  }
  if (options.fixedOutput) {
    env.set("NIX_OUTPUT_CHECKED", "1");
    for (const name of stringsAttr(drv, structured, "impureEnvVars")) {
      env.set(name, options.impureEnv?.[name] ?? "");
    }
  }
  env.set("NIX_LOG_FD", "2");
  env.set("TERM", "xterm-256color");

  const graphs = options.referenceGraphs ?? new Map<string, ExportedPathInfo[]>();
  if (structured) {
    const json = structuredAttrsJson(structured, options.outputPaths, graphs);
    files.set(".attrs.json", rewrite(dumpJson(json)));
    files.set(".attrs.sh", rewrite(printStructuredAttrsShell(json)));
    env.set("NIX_ATTRS_JSON_FILE", `${top}/.attrs.json`);
    env.set("NIX_ATTRS_SH_FILE", `${top}/.attrs.sh`);
  } else {
    for (const name of parseExportReferencesGraph(drv, options.storeDir).keys()) {
      files.set(name, printValidityRegistration(graphs.get(name) ?? []));
    }
  }

  const sorted = [...env].sort(([a], [b]) => compareUtf8(a, b));
  return {
    env: Object.fromEntries(sorted.map(([k, v]) => [rewrite(k), rewrite(v)])),
    args: drv.args.map(rewrite),
    files,
  };
}

/**
 * The store paths whose closures `exportReferencesGraph` asks for: file (or structured-attrs key)
 * name -> root store paths. Throws a TypeError on a malformed attribute.
 */
export function parseExportReferencesGraph(
  drv: Derivation,
  storeDir: string,
): Map<string, string[]> {
  const result = new Map<string, string[]>();
  const structured = parseStructuredAttrs(drv);
  if (structured) {
    const graph = getJsonKey(structured, "exportReferencesGraph");
    if (graph === undefined || !isJsonObject(graph)) return result;
    for (const [name, value] of graph.entries) {
      const paths = Array.isArray(value) ? value : [value];
      result.set(
        name,
        paths.map((p) => {
          if (typeof p !== "string" || storePathOf(p, storeDir) !== p) {
            throw new TypeError(`Attribute 'exportReferencesGraph.${name}' holds a non-store path`);
          }
          return p;
        }),
      );
    }
    return result;
  }
  const text = drv.env.get("exportReferencesGraph") ?? "";
  const tokens = tokenize(text);
  if (tokens.length % 2 !== 0) {
    throw new TypeError(`Attribute 'exportReferencesGraph' has an odd number of tokens: '${text}'`);
  }
  for (let i = 0; i < tokens.length; i += 2) {
    const [name, path] = [tokens[i], tokens[i + 1]];
    if (!GRAPH_FILE_NAME.test(name)) {
      throw new TypeError(`Invalid file name '${name}' in 'exportReferencesGraph'`);
    }
    const storePath = storePathOf(path, storeDir);
    if (storePath === undefined) {
      throw new TypeError(`Attribute 'exportReferencesGraph' contains a non-store path '${path}'`);
    }
    result.set(name, [...(result.get(name) ?? []), storePath]);
  }
  return result;
}

/**
 * `.attrs.sh` exactly as Nix 2.8 writes it: a `declare` per top-level key that is a shell name
 * and whose value is a string, integer, null, Boolean, or a flat list or object of those.
 */
export function printStructuredAttrsShell(json: JsonObject): string {
  let out = "";
  for (const [key, value] of json.entries) {
    if (!SH_VAR_NAME.test(key)) continue;
    const simple = shellSimpleValue(value);
    if (simple !== undefined) {
      out += `declare ${key}=${simple}\n`;
    } else if (Array.isArray(value)) {
      const items = value.map(shellSimpleValue);
      if (items.every((s) => s !== undefined)) {
        out += `declare -a ${key}=(${items.map((s) => s + " ").join("")})\n`;
      }
    } else if (isJsonObject(value)) {
      const items = value.entries.map(([k, v]) => [k, shellSimpleValue(v)] as const);
      if (items.every(([, s]) => s !== undefined)) {
        out += `declare -A ${key}=(${
          items.map(([k, s]) => `[${shellEscape(k)}]=${s} `).join("")
        })\n`;
      }
    }
  }
  return out;
}

function shellSimpleValue(value: JsonValue): string | undefined {
  if (typeof value === "string") return shellEscape(value);
  if (value === null) return "''";
  if (typeof value === "boolean") return value ? "1" : "";
  if (Array.isArray(value) || value.kind === "object") return undefined;
  // Nix: `auto f = value.get<float>(); if (std::ceil(f) == f) return std::to_string(value.get<int>());`
  const f = Math.fround(Number(value.value));
  if (Math.ceil(f) !== f) return undefined;
  return String(value.kind === "int" ? BigInt.asIntN(32, value.value) : toInt32(value.value));
}

/** C's `static_cast<int>(double)` as x86 computes it (out of range gives INT_MIN). */
function toInt32(x: number): number {
  const t = Math.trunc(x);
  return t >= -(2 ** 31) && t < 2 ** 31 ? t : -(2 ** 31);
}

function shellEscape(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

function parseStructuredAttrs(drv: Derivation): JsonObject | undefined {
  const text = drv.env.get(STRUCTURED_ATTRS_KEY);
  if (text === undefined) return undefined;
  const json = parseJson(text);
  if (!isJsonObject(json)) {
    throw new TypeError(
      `Attribute '${STRUCTURED_ATTRS_KEY}' of derivation '${drv.name}' is not a JSON object`,
    );
  }
  return json;
}

function structuredAttrsJson(
  attrs: JsonObject,
  outputPaths: Map<string, string>,
  graphs: Map<string, ExportedPathInfo[]>,
): JsonObject {
  const entries = new Map(attrs.entries);
  entries.set("outputs", makeJsonObject([...outputPaths]));
  const graph = getJsonKey(attrs, "exportReferencesGraph");
  if (graph !== undefined && isJsonObject(graph)) {
    for (const [name] of graph.entries) {
      entries.set(name, sortByPath(graphs.get(name) ?? []).map(pathInfoJson));
    }
  }
  return makeJsonObject(entries);
}

function pathInfoJson(info: ExportedPathInfo): JsonValue {
  const entries: [string, JsonValue][] = [
    ["closureSize", { kind: "int", value: BigInt(info.closureSize) }],
    ["narHash", info.narHash.toNix32Prefixed()],
    ["narSize", { kind: "int", value: BigInt(info.narSize) }],
    ["path", info.path],
    ["references", [...info.references].sort()],
  ];
  if (info.ca !== undefined) entries.push(["ca", info.ca]);
  return makeJsonObject(entries);
}

/** `makeValidityRegistration(paths, showDerivers=false, showHash=false)`. */
function printValidityRegistration(infos: ExportedPathInfo[]): string {
  return sortByPath(infos).map((info) => {
    const refs = [...info.references].sort();
    return `${info.path}\n\n${refs.length}\n${refs.map((r) => r + "\n").join("")}`;
  }).join("");
}

function sortByPath(infos: ExportedPathInfo[]): ExportedPathInfo[] {
  return [...infos].sort((a, b) => compareUtf8(a.path, b.path));
}

function stringsAttr(drv: Derivation, structured: JsonObject | undefined, name: string): string[] {
  if (!structured) return tokenize(drv.env.get(name) ?? "");
  const value = getJsonKey(structured, name);
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new TypeError(
      `Attribute '${name}' of derivation '${drv.name}' must be a list of strings`,
    );
  }
  return value as string[];
}

/** The store path (`<storeDir>/<name>`) a path lies in, or undefined if it is not in the store. */
function storePathOf(path: string, storeDir: string): string | undefined {
  if (!path.startsWith(storeDir + "/")) return undefined;
  const name = path.slice(storeDir.length + 1).split("/")[0];
  return name === "" ? undefined : `${storeDir}/${name}`;
}

/** Nix's `tokenizeString` with the default separators " \t\n\r". */
function tokenize(s: string): string[] {
  return s.split(/[ \t\n\r]+/).filter((t) => t !== "");
}
