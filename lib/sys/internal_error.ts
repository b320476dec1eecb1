/**
 * A broken invariant (house style tier 3): a bug, never an outcome. Goal boundaries turn one into
 * a failure with reason `internal`; the CLI prints its stack for the bug report. Every folder
 * throws this one class, so that a bug is told from a rejection by its class, not by its words.
 */
export class InternalError extends Error {
  override name = "InternalError";

  /** The message reads `Internal error: <message>`. */
  constructor(message: string, options?: ErrorOptions) {
    super(`Internal error: ${message}`, options);
  }
}

/** The exhaustiveness check that ends every switch over a tag. */
export function unreachable(value: never): never {
  throw new InternalError(`unexpected ${describe(value)}`);
}

function describe(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value); // a bigint, a cycle
  }
}
