/** Binary cache formats: narinfo, nix-cache-info, signing keys and signatures, NAR compression. */

export * from "./cache_info.ts";
export * from "./compression.ts";
export * from "./narinfo.ts";
export * from "./signing.ts";
export * from "./binary_cache.ts";
export * from "./copy_to_cache.ts";
export * from "./serve.ts";
export * from "./substitute.ts";
