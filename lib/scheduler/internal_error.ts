/**
 * A broken invariant (house style tier 3): a bug, never an outcome. Goal boundaries turn one into
 * a failure with reason `internal`; the CLI prints its stack for the bug report.
 */
export class InternalError extends Error {
  override name = "InternalError";

  /** The message reads `Internal error: <message>`. */
  constructor(message: string, options?: ErrorOptions) {
    super(`Internal error: ${message}`, options);
  }
}
