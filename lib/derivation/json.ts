/**
 * Derivations as JSON. Reads every layout Nix has printed: 2.8 `nix show-derivation`, the
 * 2.15–2.31 `nix derivation show` forms, 2.32's version 3 and 2.33+'s version 4 document.
 * Prints version 4, keys sorted, as current `nix derivation show` does.
 */

import {
  type Hash,
  type HashAlgorithm,
  outputPathName,
  parseHash,
  parseHashAlgorithm,
  parseStorePath,
} from "../hashing/mod.ts";
import {
  type ContentAddressMethod,
  type Derivation,
  type DerivationOutput,
  STRUCTURED_ATTRS_KEY,
} from "./derivation.ts";
import { derivationPath } from "./hash_modulo.ts";
import { fixedOutputPath, parseMethod, parseMethodAlgo } from "./_method.ts";
import { unreachable } from "../sys/mod.ts";
import { type JsonValue, parseJsonText, printJsonText } from "./_json_text.ts";
import { sortedUnique } from "./_sort.ts";

/** The derivation JSON version kiln prints. */
export const DERIVATION_JSON_VERSION = 4;

/** A derivation read from or printed as JSON, with its `.drv` path when the document gives it. */
export interface DerivationJsonEntry {
  path?: string;
  drv: Derivation;
}

type JsonObject = { [key: string]: unknown };

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  const t = typeof v;
  return t === "object" ? "an object" : `a ${t}`;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Reads one derivation object, reporting errors as `Invalid JSON for derivation 'x': ...`. */
class Reader {
  constructor(public label: string, readonly storeDir: string) {}

  fail(field: string, problem: string): never {
    throw new TypeError(`Invalid JSON for derivation '${this.label}': field '${field}' ${problem}`);
  }

  /** Runs `fn`, turning its error into one naming `field`. */
  at<T>(field: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof TypeError && e.message.startsWith("Invalid JSON for derivation")) throw e;
      return this.fail(field, `is invalid: ${(e as Error).message}`);
    }
  }

  get(obj: JsonObject, key: string, field: string): unknown {
    if (!Object.hasOwn(obj, key)) this.fail(field, "is missing");
    return obj[key];
  }

  string(v: unknown, field: string): string {
    if (typeof v !== "string") this.fail(field, `must be a string, found ${typeName(v)}`);
    return v;
  }

  object(v: unknown, field: string): JsonObject {
    if (!isObject(v)) this.fail(field, `must be an object, found ${typeName(v)}`);
    return v;
  }

  strings(v: unknown, field: string): string[] {
    if (!Array.isArray(v)) this.fail(field, `must be an array, found ${typeName(v)}`);
    return v.map((s, i) => this.string(s, `${field}[${i}]`));
  }

  /** A store path given in full or (version 3+) as a base name. */
  path(v: unknown, field: string): string {
    const s = this.string(v, field);
    const full = s.startsWith("/") ? s : `${this.storeDir}/${s}`;
    this.at(field, () => parseStorePath(this.storeDir, full));
    return full;
  }

  hash(v: unknown, algorithm: HashAlgorithm | undefined, field: string): Hash {
    if (isObject(v)) {
      // The short-lived `{"algorithm","format","hash"}` form.
      const algo = this.at(
        `${field}.algorithm`,
        () => parseHashAlgorithm(this.string(v.algorithm, `${field}.algorithm`)),
      );
      return this.at(field, () => parseHash(this.string(v.hash, `${field}.hash`), algo));
    }
    const text = this.string(v, field);
    return this.at(field, () => parseHash(text, algorithm));
  }

  output(v: unknown, drvName: string, outputName: string): DerivationOutput {
    const field = `outputs.${outputName}`;
    const o = this.object(v, field);
    for (const key of Object.keys(o)) {
      if (!["path", "hashAlgo", "method", "hash", "impure"].includes(key)) {
        this.fail(
          `${field}.${key}`,
          "is not an output field (path, method, hashAlgo, hash, impure)",
        );
      }
    }
    let method: ContentAddressMethod | undefined;
    let algorithm: HashAlgorithm | undefined;
    if (o.method !== undefined) {
      method = this.at(
        `${field}.method`,
        () => parseMethod(this.string(o.method, `${field}.method`)),
      );
      if (o.hashAlgo !== undefined) {
        const algo = this.string(o.hashAlgo, `${field}.hashAlgo`);
        algorithm = this.at(`${field}.hashAlgo`, () => parseHashAlgorithm(algo));
      }
    } else if (o.hashAlgo !== undefined) {
      const algo = this.string(o.hashAlgo, `${field}.hashAlgo`);
      ({ method, algorithm } = this.at(`${field}.hashAlgo`, () => parseMethodAlgo(algo)));
    }
    const given = o.path === undefined ? undefined : this.path(o.path, `${field}.path`);
    if (o.impure !== undefined) {
      if (o.impure !== true) {
        this.fail(`${field}.impure`, `must be true, found ${typeName(o.impure)}`);
      }
      if (method === undefined || algorithm === undefined) {
        this.fail(`${field}.hashAlgo`, "is missing");
      }
      return { kind: "impure", method, algorithm };
    }
    if (o.hash !== undefined) {
      if (method === undefined) this.fail(`${field}.method`, "is missing");
      const hash = this.hash(o.hash, algorithm, `${field}.hash`);
      const name = outputPathName(drvName, outputName);
      const path = this.at(field, () => fixedOutputPath(this.storeDir, { method, hash, name }));
      if (given !== undefined && given !== path) {
        this.fail(`${field}.path`, `is '${given}', but its content address gives '${path}'`);
      }
      return { kind: "fixed", path, method, hash };
    }
    if (method !== undefined) {
      if (algorithm === undefined) this.fail(`${field}.hashAlgo`, "is missing");
      if (given !== undefined) this.fail(`${field}.hash`, "is missing (a fixed output needs it)");
      return { kind: "floating", method, algorithm };
    }
    return given === undefined ? { kind: "deferred" } : { kind: "inputAddressed", path: given };
  }

  inputDrvs(v: unknown, field: string): Map<string, string[]> {
    const obj = this.object(v, field);
    const out = new Map<string, string[]>();
    for (const key of sortedUnique(Object.keys(obj))) {
      const path = this.path(key, `${field} key`);
      const value = obj[key];
      let outputs: string[];
      if (Array.isArray(value)) {
        outputs = this.strings(value, `${field}.${key}`);
      } else {
        const node = this.object(value, `${field}.${key}`);
        outputs = this.strings(
          this.get(node, "outputs", `${field}.${key}.outputs`),
          `${field}.${key}.outputs`,
        );
        const dynamic = node.dynamicOutputs;
        if (dynamic !== undefined && (!isObject(dynamic) || Object.keys(dynamic).length > 0)) {
          this.fail(
            `${field}.${key}.dynamicOutputs`,
            "must be empty (dynamic derivations are not supported)",
          );
        }
      }
      out.set(path, sortedUnique(outputs));
    }
    return out;
  }

  derivation(v: unknown, keyPath: string | undefined): Derivation {
    const d = this.object(v, "(derivation)");
    if (keyPath === undefined) {
      const env = isObject(d.env) ? d.env : {};
      const label = typeof d.name === "string" ? d.name : env.name;
      if (typeof label === "string") this.label = label;
    }
    if (d.version !== undefined && d.version !== 3 && d.version !== DERIVATION_JSON_VERSION) {
      this.fail(
        "version",
        `is ${JSON.stringify(d.version)}; kiln reads versions 3 and 4 (and the unversioned forms)`,
      );
    }
    const env = new Map<string, string>();
    const envObj = this.object(this.get(d, "env", "env"), "env");
    for (const key of sortedUnique(Object.keys(envObj))) {
      env.set(key, this.string(envObj[key], `env.${key}`));
    }
    if (d.structuredAttrs !== undefined) {
      const attrs = this.object(d.structuredAttrs, "structuredAttrs");
      if (env.has(STRUCTURED_ATTRS_KEY)) {
        this.fail("structuredAttrs", `is given twice (also as env.${STRUCTURED_ATTRS_KEY})`);
      }
      env.set(STRUCTURED_ATTRS_KEY, printJsonText(attrs));
    }
    const name = d.name !== undefined
      ? this.string(d.name, "name")
      : keyPath !== undefined
      ? keyPath.slice(this.storeDir.length + 34, -".drv".length)
      : env.get("name") ?? this.fail("name", "is missing (and so is env.name)");
    let inputDrvs: Map<string, string[]>;
    let inputSrcs: string[];
    if (d.inputs !== undefined) {
      const inputs = this.object(d.inputs, "inputs");
      inputDrvs = this.inputDrvs(this.get(inputs, "drvs", "inputs.drvs"), "inputs.drvs");
      const srcs = this.strings(this.get(inputs, "srcs", "inputs.srcs"), "inputs.srcs");
      inputSrcs = srcs.map((s, i) => this.path(s, `inputs.srcs[${i}]`));
    } else {
      inputDrvs = this.inputDrvs(this.get(d, "inputDrvs", "inputDrvs"), "inputDrvs");
      const srcs = this.strings(this.get(d, "inputSrcs", "inputSrcs"), "inputSrcs");
      inputSrcs = srcs.map((s, i) => this.path(s, `inputSrcs[${i}]`));
    }
    const outputsObj = this.object(this.get(d, "outputs", "outputs"), "outputs");
    const outputs = new Map<string, DerivationOutput>();
    for (const key of sortedUnique(Object.keys(outputsObj))) {
      outputs.set(key, this.output(outputsObj[key], name, key));
    }
    return {
      name,
      outputs,
      inputDrvs,
      inputSrcs: sortedUnique(inputSrcs),
      system: this.string(this.get(d, "system", "system"), "system"),
      builder: this.string(this.get(d, "builder", "builder"), "builder"),
      args: this.strings(this.get(d, "args", "args"), "args"),
      env,
    };
  }
}

/**
 * Reads derivation JSON (already parsed; see {@link parseDerivationJsonText} for text): a
 * `{"version":4,"derivations":{...}}` document, an object keyed by `.drv` path (full or base
 * name), or a single derivation object. Throws a TypeError naming the derivation and field.
 */
export function parseDerivationJson(value: unknown, storeDir: string): DerivationJsonEntry[] {
  if (!isObject(value)) {
    throw new TypeError(`Derivation JSON must be an object, found ${typeName(value)}`);
  }
  if (Object.hasOwn(value, "outputs")) {
    return [{ drv: new Reader("(unnamed)", storeDir).derivation(value, undefined) }];
  }
  let keyed = value;
  if (Object.hasOwn(value, "derivations")) {
    if (value.version !== DERIVATION_JSON_VERSION) {
      throw new TypeError(
        `Derivation JSON document has version ${
          JSON.stringify(value.version)
        }, expected ${DERIVATION_JSON_VERSION}`,
      );
    }
    if (!isObject(value.derivations)) {
      throw new TypeError(
        `Derivation JSON field 'derivations' must be an object, found ${
          typeName(value.derivations)
        }`,
      );
    }
    keyed = value.derivations;
  }
  return Object.keys(keyed).map((key) => {
    const reader = new Reader(key, storeDir);
    const path = reader.path(key, "(key)");
    if (!path.endsWith(".drv")) reader.fail("(key)", "must be a .drv path");
    return { path, drv: reader.derivation(keyed[key], path) };
  });
}

/** Parses JSON text losslessly (big integers in structured attrs keep their digits), then reads it. */
export function parseDerivationJsonText(text: string, storeDir: string): DerivationJsonEntry[] {
  return parseDerivationJson(parseJsonText(text), storeDir);
}

function baseName(storeDir: string, path: string): string {
  parseStorePath(storeDir, path);
  return path.slice(storeDir.length + 1);
}

function outputToJson(storeDir: string, output: DerivationOutput): JsonObject {
  switch (output.kind) {
    case "inputAddressed":
      return { path: baseName(storeDir, output.path) };
    case "fixed":
      return { hash: output.hash.toString("sri"), method: output.method };
    case "floating":
      return { hashAlgo: output.algorithm, method: output.method };
    case "deferred":
      return {};
    case "impure":
      return { hashAlgo: output.algorithm, impure: true, method: output.method };
    default:
      return unreachable(output);
  }
}

/** `__json` as an object when it prints back to the same bytes (so the JSON form is lossless). */
function losslessStructuredAttrs(env: Map<string, string>): JsonValue | undefined {
  const text = env.get(STRUCTURED_ATTRS_KEY);
  if (text === undefined) return undefined;
  try {
    const value = parseJsonText(text);
    return isObject(value) && printJsonText(value) === text ? value : undefined;
  } catch {
    return undefined;
  }
}

/** One derivation as a version 4 JSON object (unsorted; the printer sorts keys). */
export function derivationToJson(storeDir: string, drv: Derivation): JsonObject {
  const attrs = losslessStructuredAttrs(drv.env);
  const env: JsonObject = {};
  for (const [key, value] of drv.env) {
    if (!(attrs !== undefined && key === STRUCTURED_ATTRS_KEY)) env[key] = value;
  }
  const drvs: JsonObject = {};
  for (const [path, outputs] of drv.inputDrvs) {
    drvs[baseName(storeDir, path)] = { dynamicOutputs: {}, outputs: sortedUnique(outputs) };
  }
  const outputs: JsonObject = {};
  for (const [name, output] of drv.outputs) outputs[name] = outputToJson(storeDir, output);
  return {
    args: drv.args,
    builder: drv.builder,
    env,
    inputs: { drvs, srcs: sortedUnique(drv.inputSrcs.map((p) => baseName(storeDir, p))) },
    name: drv.name,
    outputs,
    ...(attrs === undefined ? {} : { structuredAttrs: attrs }),
    system: drv.system,
    version: DERIVATION_JSON_VERSION,
  };
}

/**
 * The version 4 document `nix derivation show` prints for `entries` (keyed by `.drv` base
 * name; a missing `path` is computed). Compact unless `pretty` (2-space indent).
 */
export function printDerivationJson(
  entries: readonly DerivationJsonEntry[],
  storeDir: string,
  options: { pretty?: boolean } = {},
): string {
  const derivations: JsonObject = {};
  for (const { path, drv } of entries) {
    derivations[baseName(storeDir, path ?? derivationPath(storeDir, drv))] = derivationToJson(
      storeDir,
      drv,
    );
  }
  return printJsonText(
    { derivations, version: DERIVATION_JSON_VERSION },
    options.pretty ? 2 : undefined,
  );
}
