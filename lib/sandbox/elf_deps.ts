/**
 * Nix's default `sandbox-paths` is `/bin/sh` backed by a static busybox. A host's `/bin/sh` is
 * usually dynamically linked (Debian's dash), so binding it alone gives a builder that cannot
 * start ("execvp /bin/sh: No such file or directory": the loader is missing). kiln therefore adds
 * the ELF interpreter and shared libraries of each sandbox path that is a dynamic executable,
 * as its loader lists them (`ld.so --list`), so the sandbox shows exactly what that program needs.
 */

import { parseSandboxPath } from "./sandbox_path.ts";

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];
const PT_INTERP = 3;

/** The program interpreter of a 64-bit little-endian ELF file, or undefined for anything else. */
function elfInterpreter(path: string): string | undefined {
  let bytes: Uint8Array;
  try {
    if (!Deno.statSync(path).isFile) return undefined;
    bytes = Deno.readFileSync(path);
  } catch {
    return undefined;
  }
  if (bytes.length < 64 || ELF_MAGIC.some((b, i) => bytes[i] !== b)) return undefined;
  if (bytes[4] !== 2 || bytes[5] !== 1) return undefined; // ELFCLASS64, little-endian
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const phoff = Number(view.getBigUint64(32, true));
  const phentsize = view.getUint16(54, true);
  const phnum = view.getUint16(56, true);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 40 > bytes.length || view.getUint32(at, true) !== PT_INTERP) continue;
    const offset = Number(view.getBigUint64(at + 8, true));
    const size = Number(view.getBigUint64(at + 32, true));
    const text = new TextDecoder().decode(bytes.subarray(offset, offset + size));
    return text.replace(/\0.*$/s, "");
  }
  return undefined;
}

/** The files a dynamic executable loads: its interpreter and the libraries `ld.so --list` names. */
function sharedLibrariesOf(path: string): string[] {
  const interpreter = elfInterpreter(path);
  if (interpreter === undefined) return [];
  const out = new Deno.Command(interpreter, {
    args: ["--list", path],
    stdout: "piped",
    stderr: "null",
    clearEnv: true,
  }).outputSync();
  const libraries = new Set([interpreter]);
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const match = line.match(/(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/);
    if (match) libraries.add(match[1]);
  }
  return [...libraries];
}

/**
 * `entries` plus, for each dynamic executable among them, its interpreter and libraries (as
 * optional entries, at their host paths). Entries already present are not repeated.
 */
export function withElfDependencies(entries: readonly string[]): string[] {
  const result = [...entries];
  const parsed = entries.map(parseSandboxPath);
  const seen = new Set(parsed.map((p) => p.sandboxPath));
  for (const { hostPath } of parsed) {
    for (const library of sharedLibrariesOf(hostPath)) {
      if (seen.has(library)) continue;
      seen.add(library);
      result.push(library + "?");
    }
  }
  return result;
}
