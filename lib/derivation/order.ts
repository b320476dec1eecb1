/** Dependency order for a set of derivations keyed by their `.drv` paths. */

import type { Derivation } from "./derivation.ts";

/**
 * The `.drv` paths of `drvs` with every derivation after the inputs it has in the set (input
 * derivations, and input sources that are `.drv` files; inputs outside the set are ignored);
 * ties keep the map's order. Iterative, so depth costs no stack.
 * Throws a RangeError naming a derivation that depends on itself.
 */
export function orderByDependencies(drvs: ReadonlyMap<string, Derivation>): string[] {
  const order: string[] = [];
  const done = new Set<string>();
  const open = new Set<string>();
  for (const root of drvs.keys()) {
    const stack: { path: string; expanded: boolean }[] = [{ path: root, expanded: false }];
    while (stack.length > 0) {
      const frame = stack[stack.length - 1];
      if (done.has(frame.path)) {
        stack.pop();
      } else if (frame.expanded) {
        stack.pop();
        open.delete(frame.path);
        done.add(frame.path);
        order.push(frame.path);
      } else {
        if (open.has(frame.path)) {
          throw new RangeError(`Derivation '${frame.path}' depends on itself`);
        }
        open.add(frame.path);
        frame.expanded = true;
        const drv = drvs.get(frame.path)!;
        const inputs = [...drv.inputDrvs.keys(), ...drv.inputSrcs].reverse();
        for (const input of inputs) {
          if (drvs.has(input) && !done.has(input)) stack.push({ path: input, expanded: false });
        }
      }
    }
  }
  return order;
}
