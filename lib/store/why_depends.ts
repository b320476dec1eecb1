/**
 * `nix why-depends`: why a store path's closure holds another path, as the chain of references
 * between them (the shortest first; every one with `all`), and with `physicalPath` (--precise) the files of each
 * path that hold the next one's hash, with the bytes around it. Lines as Nix 2.8 prints them,
 * ANSI colours included (Nix prints them on a pipe too).
 */

import { join } from "node:path";
import { HASH_PART_LENGTH } from "../hashing/mod.ts";
import { computeFsClosure, type ReferencesOf } from "./queries.ts";
import { TREE_CONN, TREE_LAST, TREE_LINE, TREE_NULL } from "./_tree.ts";

/** Options of {@link explainDependency}. */
export interface WhyDependsOptions {
  /** Every path between the two, not only the shortest chain. */
  all?: boolean;
  /** `--precise`: where a path's files are on disk, to show those that hold each reference. */
  physicalPath?: (path: string) => string;
}

const GREY = "\x1b[38;5;244m";
const GREEN = "\x1b[32;1m";
const BLUE = "\x1b[34;1m";
const NORMAL = "\x1b[0m";
/** Bytes shown either side of a hash in a file. */
const MARGIN = 32;

interface Node {
  path: string;
  refs: string[];
  dist: number;
  visited: boolean;
}

/** Thrown to stop at the dependency once the shortest chain is printed. */
class BailOut {}

/**
 * The lines `nix why-depends PKG DEP` prints, or undefined when DEP is not in PKG's closure.
 * `references` must answer for every path of that closure.
 */
export function explainDependency(
  pkg: string,
  dep: string,
  references: ReferencesOf,
  options: WhyDependsOptions = {},
): string[] | undefined {
  const closure = computeFsClosure([pkg], references);
  if (!closure.has(dep)) return undefined;
  const graph = new Map<string, Node>();
  for (const path of [...closure].sort()) {
    const refs = [...new Set(references(path))].sort();
    graph.set(path, { path, refs, dist: path === dep ? 0 : Infinity, visited: false });
  }
  computeDistances(graph, dep);

  const { all = false, physicalPath } = options;
  const depHash = hashPart(dep);
  const lines: string[] = [];
  const printNode = (node: Node, firstPad: string, tailPad: string): void => {
    if (physicalPath) {
      const grey = node.visited ? GREY : "";
      lines.push(`${firstPad}${grey}${firstPad !== "" ? "→ " : ""}${node.path}${NORMAL}`);
    }
    if (node.path === dep && !all && pkg !== dep) throw new BailOut();
    if (node.visited) return;
    if (physicalPath) node.visited = true;
    // References that lead to DEP, nearest first (ties by path, as Nix's multimap).
    const refs = node.refs
      .filter((r) => !(r === node.path && pkg !== dep))
      .map((r) => graph.get(r)!)
      .filter((n) => n.dist !== Infinity)
      .sort((a, b) => a.dist - b.dist);
    const hits = physicalPath
      ? findHashHits(physicalPath(node.path), refs.map((n) => hashPart(n.path)), depHash)
      : new Map<string, string[]>();
    refs.forEach((ref, n) => {
      const last = all ? n === refs.length - 1 : true;
      for (const [i, hit] of (hits.get(hashPart(ref.path)) ?? []).entries()) {
        const connector = i === 0 ? (last ? TREE_LAST : TREE_CONN) : last ? TREE_NULL : TREE_LINE;
        lines.push(`${tailPad}${connector}${hit}`);
        if (!all) break;
      }
      if (!physicalPath) {
        const grey = ref.visited ? GREY : "";
        lines.push(`${firstPad}${grey}${last ? TREE_LAST : TREE_CONN}${ref.path}${NORMAL}`);
        node.visited = true;
      }
      const pad = tailPad + (last ? TREE_NULL : TREE_LINE);
      printNode(ref, pad, pad);
    });
  };
  if (!physicalPath) lines.push(pkg);
  try {
    printNode(graph.get(pkg)!, "", "");
  } catch (e) {
    if (!(e instanceof BailOut)) throw e;
  }
  return lines;
}

/** Each node's distance (in references) to `dep`: a breadth-first walk of the referrers. */
function computeDistances(graph: Map<string, Node>, dep: string): void {
  const referrers = new Map<string, string[]>();
  for (const node of graph.values()) {
    for (const ref of node.refs) {
      referrers.get(ref)?.push(node.path) ?? referrers.set(ref, [node.path]);
    }
  }
  const queue = [dep];
  for (let i = 0; i < queue.length; i++) {
    const node = graph.get(queue[i])!;
    for (const referrer of referrers.get(node.path) ?? []) {
      const next = graph.get(referrer)!;
      if (node.dist + 1 < next.dist) {
        next.dist = node.dist + 1;
        queue.push(referrer);
      }
    }
  }
}

/**
 * The files and symlinks under `root` (a path's tree on disk) that hold each of `hashes`, as
 * Nix shows them: `FILE: …bytes around it…` (the first occurrence per file) or
 * `LINK -> target`, the hash coloured green when it is `depHash`'s, blue otherwise.
 */
function findHashHits(root: string, hashes: string[], depHash: string): Map<string, string[]> {
  const hits = new Map<string, string[]>();
  const add = (hash: string, hit: string) => hits.get(hash)?.push(hit) ?? hits.set(hash, [hit]);
  const colour = (hash: string) => (hash === depHash ? GREEN : BLUE);
  const visit = (file: string, rel: string): void => {
    const st = Deno.lstatSync(file);
    if (st.isDirectory) {
      for (const name of [...Deno.readDirSync(file)].map((e) => e.name).sort()) {
        visit(join(file, name), rel === "/" ? name : `${rel}/${name}`);
      }
    } else if (st.isSymlink) {
      const target = Deno.readLinkSync(file);
      for (const hash of hashes) {
        const pos = target.indexOf(hash);
        if (pos >= 0) add(hash, `${rel} -> ${highlight(target, pos, colour(hash))}`);
      }
    } else {
      // One character per byte, so that positions are byte offsets as in Nix.
      const contents = new TextDecoder("latin1").decode(Deno.readFileSync(file));
      for (const hash of hashes) {
        const pos = contents.indexOf(hash);
        if (pos < 0) continue;
        const from = Math.max(0, pos - MARGIN);
        const window = printable(contents.slice(from, pos + HASH_PART_LENGTH + MARGIN));
        add(hash, `${rel}: …${highlight(window, pos - from, colour(hash))}…`);
      }
    }
  };
  visit(root, "/");
  return hits;
}

function highlight(text: string, pos: number, colour: string): string {
  const end = pos + HASH_PART_LENGTH;
  return text.slice(0, pos) + colour + text.slice(pos, end) + NORMAL + text.slice(end);
}

/** Bytes outside printable ASCII as `.`, as Nix's filterPrintable. */
function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, ".");
}

function hashPart(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1, path.lastIndexOf("/") + 1 + HASH_PART_LENGTH);
}
