/**
 * `<hashpart>.narinfo`: what a binary cache knows about one store path, in the exact text Nix 2.8
 * writes (`NarInfo::to_string`). Parsing is stricter than Nix's: a malformed or repeated field is
 * an error naming the file and the field, and a URL that could leave the cache is refused.
 */

import {
  type FileIngestionMethod,
  type Hash,
  makeFixedOutputPath,
  makeTextPath,
  parseHash,
  parseStorePath,
  parseStorePathBaseName,
} from "../hashing/mod.ts";
import { checkNarUrl } from "./_nar_url.ts";
import { InternalError } from "../sys/mod.ts";

/** One narinfo. Store paths (the path, its references and deriver) are full paths. */
export interface NarInfo {
  storePath: string;
  /** Where the compressed NAR is, relative to the cache (`nar/<filehash>.nar.xz`). */
  url: string;
  /** As written (`xz`, `zstd`, `none`, ...); `bzip2` when the field is absent, as in Nix. */
  compression: string;
  /** Hash and size of the compressed file (always written by Nix 2.8). */
  fileHash?: Hash;
  fileSize?: number;
  /** sha256 of the uncompressed NAR, and its size (never 0). */
  narHash: Hash;
  narSize: number;
  /** Full store paths, sorted. */
  references: string[];
  deriver?: string;
  system?: string;
  /** `keyname:base64` signatures, sorted and distinct. */
  sigs: string[];
  /** Rendered content address (`fixed:r:sha256:<nix32>`, `text:sha256:<nix32>`). */
  ca?: string;
}

/** A narinfo that cannot be used: names the file (`whence`), the field and the line. */
export class NarInfoSyntaxError extends SyntaxError {
  override name = "NarInfoSyntaxError";
  constructor(
    readonly whence: string,
    readonly detail: string,
    readonly line?: number,
  ) {
    super(
      `NAR info '${whence}' is corrupt: ${detail}${line === undefined ? "" : ` (line ${line})`}`,
    );
  }
}

const FIELDS = [
  "StorePath",
  "URL",
  "Compression",
  "FileHash",
  "FileSize",
  "NarHash",
  "NarSize",
  "References",
  "Deriver",
  "System",
  "Sig",
  "CA",
] as const;
type Field = typeof FIELDS[number];

/**
 * Parses a narinfo's text. `storeDir` is the store the cache serves (its paths must lie directly
 * under it); `whence` names the file in errors. Unknown fields are ignored, as Nix does.
 */
export function parseNarInfo(text: string, storeDir: string, whence: string): NarInfo {
  const seen = new Set<Field>();
  const sigs = new Set<string>();
  const partial: Partial<NarInfo> = {};
  let lineNo = 0;
  let pos = 0;
  while (pos < text.length) {
    lineNo++;
    const eol = text.indexOf("\n", pos);
    if (eol < 0) {
      throw new NarInfoSyntaxError(whence, "the last line does not end with a newline", lineNo);
    }
    const line = text.slice(pos, eol);
    pos = eol + 1;
    const sep = line.indexOf(": ");
    if (sep <= 0) throw new NarInfoSyntaxError(whence, `'${line}' is not 'Name: value'`, lineNo);
    const name = line.slice(0, sep);
    const value = line.slice(sep + 2);
    if (!(FIELDS as readonly string[]).includes(name)) continue;
    const field = name as Field;
    if (field !== "Sig") {
      if (seen.has(field)) throw new NarInfoSyntaxError(whence, `${field} appears twice`, lineNo);
      seen.add(field);
    }
    try {
      parseField(field, value, storeDir, partial, sigs);
    } catch (e) {
      if (!(e instanceof SyntaxError) || e instanceof NarInfoSyntaxError) throw e;
      throw new NarInfoSyntaxError(whence, e.message, lineNo);
    }
  }
  const missing = partial.storePath === undefined
    ? "StorePath is missing"
    : partial.narHash === undefined
    ? "NarHash is missing"
    : partial.url === undefined
    ? "URL is missing"
    : !partial.narSize
    ? "NarSize is missing or zero"
    : undefined;
  if (missing) throw new NarInfoSyntaxError(whence, missing);
  return {
    storePath: partial.storePath!,
    url: partial.url!,
    compression: partial.compression ?? "bzip2",
    ...(partial.fileHash && { fileHash: partial.fileHash }),
    ...(partial.fileSize !== undefined && { fileSize: partial.fileSize }),
    narHash: partial.narHash!,
    narSize: partial.narSize!,
    references: partial.references ?? [],
    ...(partial.deriver && { deriver: partial.deriver }),
    ...(partial.system && { system: partial.system }),
    sigs: [...sigs].sort(),
    ...(partial.ca && { ca: partial.ca }),
  };
}

/** Parses one field's value into `into`; throws a plain SyntaxError the caller locates. */
function parseField(
  field: Field,
  value: string,
  storeDir: string,
  into: Partial<NarInfo>,
  sigs: Set<string>,
): void {
  switch (field) {
    case "StorePath":
      try {
        parseStorePath(storeDir, value);
      } catch (e) {
        throw new SyntaxError(`StorePath '${value}' is not valid: ${(e as Error).message}`);
      }
      into.storePath = value;
      return;
    case "URL":
      checkNarUrl(value);
      into.url = value;
      return;
    case "Compression":
      if (!/^[a-z0-9]+$/.test(value)) {
        throw new SyntaxError(`Compression '${value}' is not a method name`);
      }
      into.compression = value;
      return;
    case "FileHash":
      into.fileHash = parseFieldHash(field, value);
      return;
    case "FileSize":
      into.fileSize = parseSize(field, value);
      return;
    case "NarHash": {
      const hash = parseFieldHash(field, value);
      if (hash.algorithm !== "sha256") {
        throw new SyntaxError(`NarHash '${value}' is not a sha256 hash`);
      }
      into.narHash = hash;
      return;
    }
    case "NarSize":
      into.narSize = parseSize(field, value);
      return;
    case "References":
      into.references = parseReferences(value, storeDir);
      return;
    case "Deriver":
      if (value !== "unknown-deriver") into.deriver = parseBaseName(field, value, storeDir);
      return;
    case "System":
      if (value === "") throw new SyntaxError("System is empty");
      into.system = value;
      return;
    case "Sig":
      checkSignatureSyntax(value);
      sigs.add(value);
      return;
    case "CA":
      // Nix reads an empty CA as none.
      if (value !== "") into.ca = normalizeContentAddress(value);
      return;
    default:
      throw new InternalError(`unhandled narinfo field ${field satisfies never}`);
  }
}

function parseFieldHash(field: Field, value: string): Hash {
  if (!/^[a-z0-9]+[:-]/.test(value)) {
    throw new SyntaxError(`${field} '${value}' does not name its algorithm`);
  }
  try {
    return parseHash(value);
  } catch (e) {
    throw new SyntaxError(`${field} '${value}' is not a valid hash: ${(e as Error).message}`);
  }
}

function parseSize(field: Field, value: string): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new SyntaxError(`${field} '${value}' is not a non-negative integer`);
  }
  return n;
}

function parseBaseName(field: Field, value: string, storeDir: string): string {
  try {
    parseStorePathBaseName(value);
  } catch (e) {
    throw new SyntaxError(`${field} '${value}' is not a store path: ${(e as Error).message}`);
  }
  return `${storeDir}/${value}`;
}

function parseReferences(value: string, storeDir: string): string[] {
  const refs = value.split(" ").filter((r) => r !== "").map((r) =>
    parseBaseName("References", r, storeDir)
  );
  refs.sort();
  for (let i = 1; i < refs.length; i++) {
    if (refs[i] === refs[i - 1]) {
      throw new SyntaxError(`References lists '${refs[i]}' twice`);
    }
  }
  return refs;
}

function checkSignatureSyntax(value: string): void {
  const colon = value.indexOf(":");
  const digits = value.slice(colon + 1);
  if (colon <= 0 || digits === "" || !/^[A-Za-z0-9+/]+={0,2}$/.test(digits) || digits.length % 4) {
    throw new SyntaxError(`Sig '${value}' is not 'keyname:base64'`);
  }
}

/** Parses a content address (`text:sha256:H`, `fixed:[r:]algo:H`) and re-renders it in nix32. */
function normalizeContentAddress(value: string): string {
  const m = /^(text|fixed):(r:)?([a-z0-9]+):(.+)$/.exec(value);
  if (!m || (m[1] === "text" && (m[2] || m[3] !== "sha256"))) {
    throw new SyntaxError(`CA '${value}' is not a content address`);
  }
  let hash: Hash;
  try {
    hash = parseHash(`${m[3]}:${m[4]}`);
  } catch (e) {
    throw new SyntaxError(`CA '${value}' has an invalid hash: ${(e as Error).message}`);
  }
  return `${m[1]}:${m[2] ?? ""}${hash.toNix32Prefixed()}`;
}

/**
 * Whether `info`'s content address (its CA field) yields its store path, with its name and
 * references, as Nix's `ValidPathInfo::isContentAddressed`: such a path needs no signature, since
 * its contents prove what it is once the NAR's hash is checked against the narinfo.
 */
export function isContentAddressed(storeDir: string, info: NarInfo): boolean {
  if (info.ca === undefined) return false;
  const m = /^(text|fixed):(r:)?(.+)$/.exec(info.ca)!;
  const hash = parseHash(m[3]);
  const name = parseStorePath(storeDir, info.storePath).name;
  if (m[1] === "text") {
    return makeTextPath(storeDir, hash, name, info.references) === info.storePath;
  }
  const references = info.references.filter((r) => r !== info.storePath);
  try {
    return makeFixedOutputPath(storeDir, {
      method: m[2] ? "nar" : "flat",
      hash,
      name,
      references,
      selfReference: references.length !== info.references.length,
    }) === info.storePath;
  } catch (e) {
    if (e instanceof TypeError) return false; // references a fixed output of its kind cannot have
    throw e;
  }
}

/**
 * Whether `info` may be taken without a signature, as Nix takes it: its CA field yields its store
 * path, and the import checks the contents against that CA field ({@link contentCheck}). A path
 * that refers to itself is not taken so: Nix hashes such contents modulo their own hash part,
 * which kiln does not, so it asks for a signature there.
 */
export function provesItself(storeDir: string, info: NarInfo): boolean {
  return contentCheck(info) !== undefined && isContentAddressed(storeDir, info);
}

/** What the contents of a content-addressed path hash to: its CA field, taken apart. */
export interface ContentCheck {
  /** `text` and `flat` hash the file's contents, `nar` its NAR serialisation. */
  method: "text" | FileIngestionMethod;
  hash: Hash;
}

/**
 * What an import must find the unpacked contents of `info` to hash to (Nix checks this whenever it
 * adds a path with a CA field), or undefined: no CA field, or a reference to itself.
 */
export function contentCheck(info: NarInfo): ContentCheck | undefined {
  if (info.ca === undefined || info.references.includes(info.storePath)) return undefined;
  const m = /^(text|fixed):(r:)?(.+)$/.exec(info.ca)!;
  return { method: m[1] === "text" ? "text" : m[2] ? "nar" : "flat", hash: parseHash(m[3]) };
}

/** The narinfo text, field for field as Nix 2.8 writes it. */
export function printNarInfo(info: NarInfo): string {
  const lines = [
    `StorePath: ${info.storePath}`,
    `URL: ${info.url}`,
    `Compression: ${info.compression}`,
  ];
  if (info.fileHash) lines.push(`FileHash: ${info.fileHash.toNix32Prefixed()}`);
  if (info.fileSize !== undefined) lines.push(`FileSize: ${info.fileSize}`);
  lines.push(`NarHash: ${info.narHash.toNix32Prefixed()}`, `NarSize: ${info.narSize}`);
  lines.push(`References: ${info.references.map(baseName).sort().join(" ")}`);
  if (info.deriver) lines.push(`Deriver: ${baseName(info.deriver)}`);
  if (info.system) lines.push(`System: ${info.system}`);
  for (const sig of [...new Set(info.sigs)].sort()) lines.push(`Sig: ${sig}`);
  if (info.ca) lines.push(`CA: ${info.ca}`);
  return lines.join("\n") + "\n";
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}
