/** The operating system below every other folder: the project's one binding of libc. */

export * from "./libc.ts";
