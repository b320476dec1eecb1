/**
 * The store's graph queries as `nix-store --query` answers them: closures either way, Nix's
 * topological order, and the tree, DOT and GraphML renderings. Pure functions over a references
 * function, so any store (or a test's graph) can answer them.
 */

import { TREE_CONN, TREE_LAST, TREE_LINE, TREE_NULL } from "./_tree.ts";

/** The paths a path refers to (itself too, if it does). */
export type ReferencesOf = (path: string) => Iterable<string>;

/**
 * `paths` sorted as Nix's `topoSortPaths`: a path comes before everything it refers to among
 * `paths` (referrers first); ties in the order of Nix's `std::set` (by path). References outside
 * `paths` are not followed. Throws on a cycle, naming the two paths as Nix does.
 */
export function topoSortPaths(paths: Iterable<string>, references: ReferencesOf): string[] {
  const items = new Set(paths);
  const sorted: string[] = [];
  const visited = new Set<string>();
  const parents = new Set<string>();
  const visit = (path: string, parent: string | undefined): void => {
    if (parents.has(path)) {
      throw new RangeError(`Cycle detected in the references of '${path}' from '${parent}'`);
    }
    if (visited.has(path)) return;
    visited.add(path);
    parents.add(path);
    for (const child of sortedSet(references(path))) {
      if (child !== path && items.has(child)) visit(child, path);
    }
    sorted.push(path);
    parents.delete(path);
  };
  for (const path of sortedSet(items)) visit(path, undefined);
  return sorted.reverse();
}

/** `starts` and everything reachable from them through `next`, as a set. */
export function computeFsClosure(starts: Iterable<string>, next: ReferencesOf): Set<string> {
  const done = new Set<string>();
  const todo = [...starts];
  while (todo.length > 0) {
    const path = todo.pop()!;
    if (done.has(path)) continue;
    done.add(path);
    for (const p of next(path)) if (!done.has(p)) todo.push(p);
  }
  return done;
}

/**
 * The closure of `starts` under references as Nix's `computeFSClosure(..., includeOutputs)`:
 * with `outputsOf`, each derivation in it also brings its valid outputs and their closures.
 */
export function computeRequisites(
  starts: Iterable<string>,
  references: ReferencesOf,
  outputsOf?: ReferencesOf,
): Set<string> {
  if (outputsOf === undefined) return computeFsClosure(starts, references);
  return computeFsClosure(starts, (path) => {
    const next = [...references(path)];
    if (path.endsWith(".drv")) next.push(...outputsOf(path));
    return next;
  });
}

/**
 * `nix-store -q --tree`: each root and its references, depth first, a reference's subtree only
 * the first time it is met (later `[...]`), siblings in reverse topological order.
 */
export function renderTree(roots: Iterable<string>, references: ReferencesOf): string[] {
  const lines: string[] = [];
  const done = new Set<string>();
  const print = (path: string, firstPad: string, tailPad: string): void => {
    if (done.has(path)) {
      lines.push(`${firstPad}${path} [...]`);
      return;
    }
    done.add(path);
    lines.push(`${firstPad}${path}`);
    const children = topoSortPaths(references(path), references).reverse();
    children.forEach((child, n) => {
      const last = n + 1 === children.length;
      print(
        child,
        tailPad + (last ? TREE_LAST : TREE_CONN),
        tailPad + (last ? TREE_NULL : TREE_LINE),
      );
    });
  };
  for (const root of roots) print(root, "", "");
  return lines;
}

const DOT_COLOURS = ["black", "red", "green", "blue", "magenta", "burlywood"];

/**
 * `nix-store -q --graph`: the closure of `roots` in DOT, visited smallest path first as Nix's
 * work list; edges go from a reference to its referrer, coloured in turn.
 */
export function renderDotGraph(roots: Iterable<string>, references: ReferencesOf): string {
  let out = "digraph G {\n";
  let colour = 0;
  walkGraph(roots, references, (path, refs) => {
    const id = baseName(path);
    out += `"${id}" [label = "${pathName(path)}", shape = box, style = filled, ` +
      `fillcolor = "#ff0000"];\n`;
    for (const ref of refs) {
      const c = DOT_COLOURS[colour++ % DOT_COLOURS.length];
      out += `"${baseName(ref)}" -> "${id}" [color = "${c}"];\n`;
    }
  });
  return out + "}\n";
}

/**
 * `nix-store -q --graphml`: the closure of `roots` in GraphML with each node's NAR size, name
 * up to its first dash and type; edges from referrer to reference.
 */
export function renderGraphMl(
  roots: Iterable<string>,
  references: ReferencesOf,
  narSize: (path: string) => number,
): string {
  let out = "<?xml version='1.0' encoding='utf-8'?>\n" +
    "<graphml xmlns='http://graphml.graphdrawing.org/xmlns'\n" +
    "    xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'\n" +
    "    xsi:schemaLocation='http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd'>\n" +
    "<key id='narSize' for='node' attr.name='narSize' attr.type='int'/>" +
    "<key id='name' for='node' attr.name='name' attr.type='string'/>" +
    "<key id='type' for='node' attr.name='type' attr.type='string'/>" +
    "<graph id='G' edgedefault='directed'>\n";
  walkGraph(roots, references, (path, refs) => {
    const name = pathName(path);
    out += `  <node id="${baseName(path)}">\n` +
      `    <data key="narSize">${narSize(path)}</data>\n` +
      `    <data key="name">${name.slice(0, name.indexOf("-") + 1)}</data>\n` +
      `    <data key="type">${path.endsWith(".drv") ? "derivation" : "output-path"}</data>\n` +
      "  </node>\n";
    for (const ref of refs) {
      out += `  <edge source="${baseName(path)}" target="${baseName(ref)}"/>\n`;
    }
  });
  return out + "</graph>\n</graphml>\n";
}

/**
 * Visits the closure of `roots` as Nix's graph printers: always the smallest path left in the
 * work list, each once, with its references other than itself (sorted).
 */
function walkGraph(
  roots: Iterable<string>,
  references: ReferencesOf,
  visit: (path: string, references: string[]) => void,
): void {
  const work = sortedSet(roots).reverse(); // descending: the smallest is popped
  const queued = new Set(work);
  while (work.length > 0) {
    const path = work.pop()!;
    const refs = sortedSet(references(path)).filter((p) => p !== path);
    for (const ref of refs) {
      if (queued.has(ref)) continue;
      queued.add(ref);
      work.splice(insertionIndex(work, ref), 0, ref);
    }
    visit(path, refs);
  }
}

/** Where `path` goes in `work` (sorted descending). */
function insertionIndex(work: string[], path: string): number {
  let lo = 0;
  let hi = work.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (work[mid] > path) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function sortedSet(paths: Iterable<string>): string[] {
  return [...new Set(paths)].sort();
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** The name of a store path: its base name after the hash and dash. */
function pathName(path: string): string {
  const base = baseName(path);
  return base.slice(base.indexOf("-") + 1);
}
