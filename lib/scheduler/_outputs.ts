/**
 * What a finished build produced, as Nix 2.8's `registerOutputs` examines it: each output is
 * canonicalised, then hashed and scanned for references in one walk over its NAR; fixed outputs are
 * checked against their declared hash; `allowedReferences` and friends (env or structured
 * `outputChecks`) are enforced. A rejection is a value, `{ rejected }` with Nix's words, never an
 * exception.
 */

import { type Derivation, type DerivationOutput, structuredAttrs } from "../derivation/mod.ts";
import {
  createHasher,
  type Hash,
  type Hasher,
  ReferenceScanner,
  storePathHashPart,
} from "../hashing/mod.ts";
import { hashFile, hashPath, type LocalStore, lutimes } from "../store/mod.ts";
import { unreachable } from "../sys/mod.ts";

/** Why the outputs cannot be registered, in Nix's words. */
export interface Rejected {
  rejected: string;
}

/** One output after the build: its NAR hash and size and the store paths it refers to. */
export interface ScannedOutput {
  path: string;
  narHash: Hash;
  narSize: number;
  /** Sorted full store paths (its own path included when it refers to itself). */
  references: string[];
  /** For a fixed output: the hash of its contents as declared (flat: file, nar: NAR). */
  contentHash?: Hash;
}

/** The store paths whose hash parts a scan looks for, by hash part. */
export function referenceCandidates(
  storeDir: string,
  paths: Iterable<string>,
): Map<string, string> {
  const candidates = new Map<string, string>();
  for (const path of paths) candidates.set(storePathHashPart(storeDir, path), path);
  return candidates;
}

/**
 * The NAR hash, size and references among `candidates` of the tree at `location` (the output
 * `path` as built, canonicalised); for a fixed output also its content hash. Rejects a flat fixed
 * output that is not a plain file.
 */
export function scanOutput(
  location: string,
  path: string,
  options: {
    candidates: ReadonlyMap<string, string>;
    fixed?: DerivationOutput & { kind: "fixed" };
  },
): ScannedOutput | Rejected {
  const scanner = new ReferenceScanner(options.candidates);
  const fixed = options.fixed;
  let extra: Hasher | undefined;
  if (fixed?.method === "nar" && fixed.hash.algorithm !== "sha256") {
    extra = createHasher(fixed.hash.algorithm);
  }
  const nar = hashPath(location, "sha256", {
    onChunk: (chunk) => {
      scanner.update(chunk);
      extra?.update(chunk);
    },
  });
  const references = [...scanner.found].map((part) => options.candidates.get(part)!).sort();
  const scanned: ScannedOutput = { path, narHash: nar.hash, narSize: nar.size, references };
  if (fixed === undefined) return scanned;
  switch (fixed.method) {
    case "nar":
      scanned.contentHash = extra?.digest() ?? nar.hash;
      return scanned;
    case "flat": {
      const hash = hashFlatFile(location, path, fixed.hash.algorithm);
      if ("rejected" in hash) return hash;
      scanned.contentHash = hash;
      return scanned;
    }
    case "text":
      return { rejected: `Output '${path}' uses text hashing, which fixed outputs cannot use` };
    default:
      return unreachable(fixed.method);
  }
}

/**
 * Nix's `canonicalisePathMetaData`: files 0444 (0555 when executable by their owner),
 * directories 0555, everything mtime 1; setuid, setgid and sticky bits go with the old mode.
 * Rejects a FIFO, socket or device, which a store path cannot hold.
 */
export function canonicaliseTree(path: string): Rejected | undefined {
  const info = Deno.lstatSync(path);
  if (info.isSymlink) {
    lutimes(path, 1, 1);
    return undefined;
  }
  if (info.isDirectory) {
    for (const entry of Deno.readDirSync(path)) {
      const rejected = canonicaliseTree(`${path}/${entry.name}`);
      if (rejected !== undefined) return rejected;
    }
  } else if (!info.isFile) {
    return { rejected: `file '${path}' has an unsupported type` };
  }
  const mode = info.isDirectory || (info.mode! & 0o100) !== 0 ? 0o555 : 0o444;
  if ((info.mode! & 0o7777) !== mode) Deno.chmodSync(path, mode);
  Deno.utimeSync(path, 1, 1);
  return undefined;
}

function hashFlatFile(
  location: string,
  path: string,
  algorithm: Hash["algorithm"],
): Hash | Rejected {
  const info = Deno.lstatSync(location);
  if (!info.isFile || (info.mode! & 0o100) !== 0) {
    return {
      rejected:
        `output path '${path}' should be a non-executable regular file since recursive hashing is not enabled (outputHashMode=flat)`,
    };
  }
  return hashFile(location, algorithm);
}

/** Nix's fixed-output hash mismatch message, or undefined when the hash is the declared one. */
export function fixedOutputMismatch(
  drvPath: string,
  output: DerivationOutput & { kind: "fixed" },
  got: Hash,
): string | undefined {
  if (got.equals(output.hash)) return undefined;
  return `hash mismatch in fixed-output derivation '${drvPath}':\n` +
    `  specified: ${output.hash.toString("sri")}\n` +
    `     got:    ${got.toString("sri")}`;
}

interface OutputChecks {
  allowedReferences?: string[];
  allowedRequisites?: string[];
  disallowedReferences?: string[];
  disallowedRequisites?: string[];
  maxSize?: number;
  maxClosureSize?: number;
  /** The env form ignores an output's own path in its requisites. */
  ignoreSelfRefs: boolean;
}

const LIST_CHECKS = [
  ["allowedReferences", false, true],
  ["allowedRequisites", true, true],
  ["disallowedReferences", false, false],
  ["disallowedRequisites", true, false],
] as const;

/**
 * Applies the derivation's output checks to its freshly built `outputs` (by output name); returns
 * the first violation, or undefined. Closures of references outside the build
 * come from `store`.
 */
export function checkOutputs(
  drvPath: string,
  drv: Derivation,
  outputs: ReadonlyMap<string, ScannedOutput>,
  store: LocalStore,
): Rejected | undefined {
  const byPath = new Map([...outputs.values()].map((o) => [o.path, o]));
  const closureOf = (path: string): Set<string> => {
    const seen = new Set<string>([path]);
    const outside: string[] = [];
    const work = [path];
    for (let p = work.pop(); p !== undefined; p = work.pop()) {
      for (const ref of byPath.get(p)?.references ?? []) {
        if (seen.has(ref)) continue;
        seen.add(ref);
        if (byPath.has(ref)) work.push(ref);
        else outside.push(ref);
      }
    }
    for (const p of outside.length > 0 ? store.computeClosure(outside) : []) seen.add(p);
    return seen;
  };
  const cycle = outputCycle(drvPath, outputs, byPath);
  if (cycle !== undefined) return cycle;
  const structured = structuredOutputChecks(drv);
  for (const [name, output] of outputs) {
    const checks = structured ? structured(name) : envOutputChecks(drv);
    if (checks === undefined) continue;
    if ("rejected" in checks) return checks;
    if (checks.maxSize !== undefined && output.narSize > checks.maxSize) {
      return {
        rejected:
          `path '${output.path}' is too large at ${output.narSize} bytes; limit is ${checks.maxSize} bytes`,
      };
    }
    let closure: Set<string> | undefined;
    if (checks.maxClosureSize !== undefined) {
      closure = closureOf(output.path);
      let size = 0;
      for (const p of closure) size += byPath.get(p)?.narSize ?? store.queryPathInfo(p)!.narSize;
      if (size > checks.maxClosureSize) {
        return {
          rejected:
            `closure of path '${output.path}' is too large at ${size} bytes; limit is ${checks.maxClosureSize} bytes`,
        };
      }
    }
    for (const [attr, recursive, allowed] of LIST_CHECKS) {
      const items = checks[attr];
      if (items === undefined) continue;
      const spec = resolveSpecifiers(items, drv, store.storeDir);
      if ("rejected" in spec) return spec;
      const used = recursive ? (closure ??= closureOf(output.path)) : new Set(output.references);
      const bad = [...used].filter((p) => {
        if (recursive && checks.ignoreSelfRefs && p === output.path) return false;
        return spec.has(p) !== allowed;
      }).sort();
      if (bad.length > 0) {
        return {
          rejected: `output '${output.path}' is not allowed to refer to the following paths:` +
            bad.map((p) => `\n  ${p}`).join(""),
        };
      }
    }
  }
  return undefined;
}

/** The store paths `items` name: store paths, or names of the derivation's outputs. */
function resolveSpecifiers(
  items: string[],
  drv: Derivation,
  storeDir: string,
): Set<string> | Rejected {
  const spec = new Set<string>();
  for (const item of items) {
    const output = drv.outputs.get(item);
    if (item.startsWith(storeDir + "/")) spec.add(item);
    else if (output?.kind === "inputAddressed" || output?.kind === "fixed") spec.add(output.path);
    else return { rejected: `derivation contains an illegal reference specifier '${item}'` };
  }
  return spec;
}

/** Nix's topological sort of the outputs by their references to each other: a cycle fails. */
function outputCycle(
  drvPath: string,
  outputs: ReadonlyMap<string, ScannedOutput>,
  byPath: ReadonlyMap<string, ScannedOutput & { name?: string }>,
): Rejected | undefined {
  const nameOf = new Map([...outputs].map(([name, o]) => [o.path, name]));
  const done = new Set<string>();
  const visit = (path: string, parents: Set<string>, parent?: string): Rejected | undefined => {
    if (parents.has(path)) {
      return {
        rejected: `cycle detected in build of '${drvPath}' in the references of output ` +
          `'${nameOf.get(path)}' from output '${nameOf.get(parent!)}'`,
      };
    }
    if (done.has(path)) return undefined;
    done.add(path);
    parents.add(path);
    for (const ref of byPath.get(path)!.references) {
      if (ref === path || !byPath.has(ref)) continue;
      const cycle = visit(ref, parents, path);
      if (cycle !== undefined) return cycle;
    }
    parents.delete(path);
    return undefined;
  };
  for (const name of [...outputs.keys()].sort()) {
    const cycle = visit(outputs.get(name)!.path, new Set());
    if (cycle !== undefined) return cycle;
  }
  return undefined;
}

function envOutputChecks(drv: Derivation): OutputChecks {
  const checks: OutputChecks = { ignoreSelfRefs: true };
  for (const [attr] of LIST_CHECKS) {
    const value = drv.env.get(attr);
    if (value !== undefined) checks[attr] = value.split(/[ \t\n\r]+/).filter((t) => t !== "");
  }
  return checks;
}

/** For structured attrs: output name -> its `outputChecks` entry; undefined without them. */
function structuredOutputChecks(
  drv: Derivation,
): ((output: string) => OutputChecks | Rejected | undefined) | undefined {
  const attrs = structuredAttrs(drv);
  if (attrs === undefined) return undefined;
  const all = attrs.outputChecks;
  return (output) => {
    if (typeof all !== "object" || all === null) return undefined;
    const entry = (all as Record<string, unknown>)[output];
    if (typeof entry !== "object" || entry === null) return undefined;
    const e = entry as Record<string, unknown>;
    const checks: OutputChecks = { ignoreSelfRefs: false };
    for (const [attr] of LIST_CHECKS) {
      const value = e[attr];
      if (value === undefined) continue;
      if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
        return { rejected: `Attribute 'outputChecks.${output}.${attr}' must be a list of strings` };
      }
      checks[attr] = value;
    }
    for (const attr of ["maxSize", "maxClosureSize"] as const) {
      if (typeof e[attr] === "number") checks[attr] = e[attr] as number;
    }
    return checks;
  };
}
