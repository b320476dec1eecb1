/**
 * Below every other folder: the project's one binding of libc, and the error every folder throws
 * for a broken invariant.
 */

export * from "./libc.ts";
export * from "./internal_error.ts";
