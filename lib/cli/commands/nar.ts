/** `kiln nar dump|restore|ls`: NAR archives from and to the file system, and their listings. */

import type { NarNode } from "../../hashing/mod.ts";
import { dumpPath, listNar, restoreNar } from "../../store/mod.ts";
import { parseCommandArgs, runSubcommand, UsageError } from "../args.ts";
import { type Command, printLines } from "../command.ts";
import { InternalError } from "../../sys/mod.ts";

const USAGE = `Usage:
  kiln nar dump PATH
      write the NAR serialisation of PATH to stdout, as 'nix-store --dump'
  kiln nar restore DIR
      unpack the NAR read from stdin into DIR, which must not exist, as 'nix-store --restore'
  kiln nar ls [-R|--recursive] [-l|--long] [-d|--directory] [--json] NAR_FILE [PATH]
      list PATH (absolute inside the archive, default /) of a NAR file, as 'nix nar ls'`;

export const narCommand: Command = {
  usage: USAGE,
  run: (args) =>
    runSubcommand("nar", args, {
      async dump(rest) {
        await dumpPath(onePositional(rest, "dump", "PATH")).pipeTo(Deno.stdout.writable, {
          preventClose: true,
        });
        return 0;
      },
      async restore(rest) {
        await restoreNar(Deno.stdin.readable, onePositional(rest, "restore", "DIR"));
        return 0;
      },
      ls: list,
    }),
};

function onePositional(args: string[], sub: string, label: string): string {
  const { positionals } = parseCommandArgs(args, {});
  if (positionals.length !== 1) throw new UsageError(`kiln nar ${sub} takes exactly one ${label}`);
  return positionals[0];
}

/** A listed node with its entries' names, in NAR (sorted) order. */
type _Listed = NarNode & { entries?: string[] };

async function list(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    recursive: { type: "boolean", short: "R" },
    long: { type: "boolean", short: "l" },
    directory: { type: "boolean", short: "d" },
    json: { type: "boolean" },
  });
  if (positionals.length < 1 || positionals.length > 2) {
    throw new UsageError("kiln nar ls takes a NAR_FILE and optionally a PATH inside it");
  }
  if (values.json && values.directory) {
    throw new UsageError("'--directory' is useless with '--json'");
  }
  const [narFile, path = "/"] = positionals;
  if (!path.startsWith("/")) throw new UsageError(`Path '${path}' inside the NAR is not absolute`);
  const want = path === "/" ? "" : path.slice(1);
  const nodes = new Map<string, _Listed>();
  using file = await Deno.open(narFile);
  for await (const node of listNar(file.readable)) {
    const slash = node.path.lastIndexOf("/");
    nodes.get(slash < 0 ? "" : node.path.slice(0, slash))?.entries?.push(node.path);
    if (node.path === want || node.path.startsWith(want === "" ? "" : `${want}/`)) {
      nodes.set(node.path, node.type === "directory" ? { ...node, entries: [] } : node);
    }
  }
  const target = nodes.get(want);
  if (!target) throw new RangeError(`Path '${path}' does not exist in NAR '${narFile}'`);
  if (values.json) {
    printLines([printJsonNode(target, nodes, values.recursive ?? false)]);
  } else {
    const lines: string[] = [];
    const show = (node: _Listed, rel: string) => {
      lines.push(values.long ? longLine(node, rel) : rel);
      if (values.recursive && node.entries) showEntries(node, rel);
    };
    const showEntries = (dir: _Listed, rel: string) => {
      for (const p of dir.entries!) {
        show(nodes.get(p)!, `${rel}/${p.slice(p.lastIndexOf("/") + 1)}`);
      }
    };
    if (target.entries && !values.directory) showEntries(target, ".");
    else show(target, target.entries ? "." : want.slice(want.lastIndexOf("/") + 1));
    printLines(lines);
  }
  return 0;
}

/** `nix nar ls -l`'s line: mode string as in a canonical store, size padded to 20, name. */
function longLine(node: _Listed, rel: string): string {
  switch (node.type) {
    case "regular":
      return `${node.executable ? "-r-xr-xr-x" : "-r--r--r--"} ${
        String(node.size).padStart(20)
      } ${rel}`;
    case "symlink":
      return `lrwxrwxrwx ${"0".padStart(20)} ${rel} -> ${node.target}`;
    case "directory":
      return `dr-xr-xr-x ${"0".padStart(20)} ${rel}`;
    default:
      throw new InternalError(`unexpected node ${String(node satisfies never)}`);
  }
}

/**
 * `nix nar ls --json`'s text; without `recursive`, a directory's entries are `{}`. Built by hand
 * so that entries keep NAR order (a JS object would put integer-like names first).
 */
function printJsonNode(node: _Listed, nodes: Map<string, _Listed>, recursive: boolean): string {
  switch (node.type) {
    case "regular":
      return JSON.stringify({
        type: "regular",
        size: node.size,
        ...(node.executable ? { executable: true } : {}),
        narOffset: node.narOffset,
      });
    case "symlink":
      return JSON.stringify({ type: "symlink", target: node.target });
    case "directory": {
      const entries = node.entries!.map((p) =>
        `${JSON.stringify(p.slice(p.lastIndexOf("/") + 1))}:${
          recursive ? printJsonNode(nodes.get(p)!, nodes, true) : "{}"
        }`
      );
      return `{"type":"directory","entries":{${entries.join(",")}}}`;
    }
    default:
      throw new InternalError(`unexpected node ${String(node satisfies never)}`);
  }
}
