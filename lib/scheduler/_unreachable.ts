import { InternalError } from "./internal_error.ts";

/** The exhaustiveness check that ends every switch over a tag in this folder. */
export function unreachable(value: never): never {
  throw new InternalError(`unexpected tag ${JSON.stringify(value)}`);
}
