/** Stores: the `Store` interface and the local store (SQLite metadata, NAR to and from disk). */

export * from "./nar_fs.ts";
export * from "./local_store.ts";
export * from "./locks.ts";
export * from "./metadata_db.ts";
export * from "./import_nar.ts";
export * from "./narinfo_cache.ts";
export { lutimes, pathExists, removeTree } from "./_fs.ts";
export { directoryInodes } from "./_file_io.ts";
export * from "./store.ts";
export * from "./queries.ts";
export * from "./export.ts";
export * from "./why_depends.ts";
export * from "./verify.ts";
export * from "./optimise.ts";
export * from "./roots.ts";
export * from "./gc.ts";
export { findRuntimeRoots } from "./runtime_roots.ts";
export { readTempRoots } from "./temp_roots.ts";
