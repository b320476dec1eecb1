/** The exhaustiveness check that ends every switch over a tag in this folder. */
export function unreachable(value: never): never {
  throw new TypeError(`Internal error: unexpected tag ${JSON.stringify(value)}`);
}
