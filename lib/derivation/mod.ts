/** Derivations: the value, its ATerm and JSON texts, and the hashes that name its paths. */

export * from "./derivation.ts";
export * from "./aterm.ts";
export * from "./json.ts";
export * from "./hash_modulo.ts";
export * from "./order.ts";
export { fixedOutputPath } from "./_method.ts";
export { JsonNumber, type JsonValue, parseJsonText, printJsonText } from "./_json_text.ts";
