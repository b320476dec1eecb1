/** Pure hashing: digests and their text forms, nix32, store path computation, NAR encoding. */

export * from "./bytes.ts";
export * from "./hash.ts";
export * from "./nix_base32.ts";
export * from "./store_path.ts";
export * from "./references.ts";
export * from "./nar.ts";
export * from "./nar_reader.ts";
