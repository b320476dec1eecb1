/** Binary cache formats: narinfo, nix-cache-info, signing keys and signatures, NAR compression. */

export * from "./cache_info.ts";
export * from "./compression.ts";
export * from "./narinfo.ts";
export * from "./signing.ts";
