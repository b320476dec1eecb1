import { assertEquals, assertThrows } from "../_assert.ts";
import { computeRequisites, renderTree, topoSortPaths } from "../../lib/store/mod.ts";

const graph: Record<string, string[]> = {
  "/s/a-top": ["/s/b-lib", "/s/c-dev"],
  "/s/b-lib": ["/s/b-lib", "/s/d-leaf"],
  "/s/c-dev": ["/s/b-lib"],
  "/s/d-leaf": [],
  "/s/e-x.drv": ["/s/f-y.drv"],
  "/s/f-y.drv": [],
};
const refs = (p: string) => graph[p];

Deno.test("topoSortPaths() puts referrers first, ties by path, and ignores self-references", () => {
  assertEquals(topoSortPaths(["/s/d-leaf", "/s/b-lib", "/s/a-top", "/s/c-dev"], refs), [
    "/s/a-top",
    "/s/c-dev",
    "/s/b-lib",
    "/s/d-leaf",
  ]);
});

Deno.test("topoSortPaths() names both paths of a cycle", () => {
  const cyclic = (p: string) => (p === "/s/a" ? ["/s/b"] : ["/s/a"]);
  assertThrows(
    () => topoSortPaths(["/s/a", "/s/b"], cyclic),
    RangeError,
    "Cycle detected in the references of '/s/a' from '/s/b'",
  );
});

Deno.test("computeRequisites() adds a derivation's outputs only when asked", () => {
  const outputs = (drv: string) => (drv === "/s/f-y.drv" ? ["/s/c-dev"] : []);
  assertEquals([...computeRequisites(["/s/e-x.drv"], refs)].sort(), ["/s/e-x.drv", "/s/f-y.drv"]);
  assertEquals([...computeRequisites(["/s/e-x.drv"], refs, outputs)].sort(), [
    "/s/b-lib",
    "/s/c-dev",
    "/s/d-leaf",
    "/s/e-x.drv",
    "/s/f-y.drv",
  ]);
});

Deno.test("renderTree() prints dependencies first, a subtree once, then [...]", () => {
  assertEquals(renderTree(["/s/a-top"], refs), [
    "/s/a-top",
    "├───/s/b-lib",
    "│   ├───/s/d-leaf",
    "│   └───/s/b-lib [...]",
    "└───/s/c-dev",
    "    └───/s/b-lib [...]",
  ]);
});
