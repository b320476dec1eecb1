/** `kiln hash path|file|convert`: Nix's hashes of files and trees, and conversions between forms. */

import {
  createHasher,
  type Hash,
  type HashAlgorithm,
  type HashFormat,
  parseHashAlgorithm,
  parseHashFormat,
  parseHashWithFormat,
} from "../../hashing/mod.ts";
import { hashPath } from "../../store/mod.ts";
import { parseCommandArgs, runSubcommand, UsageError } from "../args.ts";
import { type Command, printLines } from "../command.ts";

const USAGE = `Usage:
  kiln hash path [--type T] [--base16|--base32|--base64|--sri] PATH...
      hash of each PATH's NAR serialisation, as 'nix hash path'
  kiln hash file [--type T] [--base16|--base32|--base64|--sri] PATH...
      hash of each file's contents, as 'nix hash file'
  kiln hash convert [--type T] [--from FORMAT] [--to FORMAT] HASH...
      re-print hashes (FORMAT: base16, nix32 or base32, base64, sri; default --to sri);
      --type is needed only for bare digits, --from asserts the input's format

T is md5, sha1, sha256 (default) or sha512. Output is SRI unless a format flag is given.`;

const OUTPUT_FLAGS = {
  type: { type: "string" },
  base16: { type: "boolean" },
  base32: { type: "boolean" },
  base64: { type: "boolean" },
  sri: { type: "boolean" },
} as const;

export const hashCommand: Command = {
  usage: USAGE,
  run: (args) =>
    runSubcommand("hash", args, {
      path: (rest) => hashFiles("path", rest),
      file: (rest) => hashFiles("file", rest),
      convert,
    }),
};

async function hashFiles(mode: "path" | "file", args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, OUTPUT_FLAGS);
  const algorithm = parseHashAlgorithm(values.type ?? "sha256");
  const chosen = (["base16", "base32", "base64", "sri"] as const).filter((f) => values[f]);
  if (chosen.length > 1) {
    throw new UsageError("Give at most one of --base16/--base32/--base64/--sri");
  }
  const format = parseHashFormat(chosen[0] ?? "sri");
  if (positionals.length === 0) throw new UsageError(`kiln hash ${mode} needs at least one PATH`);
  const lines: string[] = [];
  for (const path of positionals) {
    const hash = mode === "path" ? hashPath(path, algorithm).hash : await hashFile(path, algorithm);
    lines.push(hash.toString(format));
  }
  printLines(lines);
  return 0;
}

async function hashFile(path: string, algorithm: HashAlgorithm): Promise<Hash> {
  const hasher = createHasher(algorithm);
  const file = await Deno.open(path);
  for await (const chunk of file.readable) hasher.update(chunk); // the stream closes the file
  return hasher.digest();
}

function convert(args: string[]): number {
  const { values, positionals } = parseCommandArgs(args, {
    type: { type: "string" },
    "hash-algo": { type: "string" },
    from: { type: "string" },
    to: { type: "string" },
  });
  const typeName = values.type ?? values["hash-algo"];
  const algorithm = typeName === undefined ? undefined : parseHashAlgorithm(typeName);
  const to: HashFormat = parseHashFormat(values.to ?? "sri");
  const from = values.from === undefined ? undefined : parseHashFormat(values.from);
  if (positionals.length === 0) throw new UsageError("kiln hash convert needs at least one HASH");
  printLines(positionals.map((text) => {
    const parsed = parseHashWithFormat(text, algorithm);
    if (from !== undefined && parsed.format !== from) {
      throw new SyntaxError(
        `Input hash '${text}' has format '${parsed.format}', but '--from ${from}' was specified`,
      );
    }
    return parsed.hash.toString(to);
  }));
  return 0;
}
