/**
 * Pure wire formats of Nix's worker and serve protocols: framing, values, versioned codecs.
 * Bytes in, values out; no I/O. Versioned codecs take the negotiated version in their context.
 */

export * from "./wire.ts";
export * from "./framed.ts";
export * from "./handshake.ts";
export * from "./ops.ts";
export * from "./stderr.ts";
export * from "./values.ts";
export * from "./path_info.ts";
export * from "./build_result.ts";
export * from "./basic_derivation.ts";
export * from "./serve_options.ts";
export * from "./client_settings.ts";
export * from "./worker_requests.ts";
