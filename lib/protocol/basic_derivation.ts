/**
 * `BasicDerivation` as BuildDerivation sends it (worker op 36, serve command 8): a derivation
 * without its input derivations, whose name comes from the `.drv` path sent before it.
 */

import type { Derivation, DerivationOutput } from "../derivation/mod.ts";
import {
  type HashAlgorithm,
  parseHash,
  parseHashAlgorithm,
  parseStorePath,
} from "../hashing/mod.ts";
import { parseAt, readStorePaths, sortedEntries, writeStringSet } from "./values.ts";
import type { WireReader, WireWriter } from "./wire.ts";
import { InternalError } from "../sys/mod.ts";

export type BasicDerivation = Omit<Derivation, "inputDrvs">;

type Method = "flat" | "nar" | "text";

function parseMethodAlgo(text: string): { method: Method; algorithm: HashAlgorithm } {
  if (text.startsWith("r:")) return { method: "nar", algorithm: parseHashAlgorithm(text.slice(2)) };
  if (text.startsWith("text:")) {
    return { method: "text", algorithm: parseHashAlgorithm(text.slice(5)) };
  }
  return { method: "flat", algorithm: parseHashAlgorithm(text) };
}

function methodPrefix(method: Method): string {
  return method === "nar" ? "r:" : method === "text" ? "text:" : "";
}

/** The (path, hashAlgo, hash) triple of an output, as Nix 2.8 writes it. */
function outputFields(output: DerivationOutput): [string, string, string] {
  switch (output.kind) {
    case "inputAddressed":
      return [output.path, "", ""];
    case "fixed":
      return [
        output.path,
        methodPrefix(output.method) + output.hash.algorithm,
        output.hash.toString("base16", false),
      ];
    case "floating":
      return ["", methodPrefix(output.method) + output.algorithm, ""];
    case "deferred":
      return ["", "", ""];
    case "impure":
      return ["", methodPrefix(output.method) + output.algorithm, "impure"];
    default: {
      const unknown: never = output;
      throw new InternalError(`derivation output ${JSON.stringify(unknown)}`);
    }
  }
}

function parseOutput(storeDir: string, path: string, algo: string, hash: string) {
  if (path !== "") parseStorePath(storeDir, path);
  if (algo === "") {
    if (hash !== "") throw new SyntaxError(`Output hash '${hash}' has no algorithm`);
    return path === "" ? { kind: "deferred" as const } : { kind: "inputAddressed" as const, path };
  }
  const { method, algorithm } = parseMethodAlgo(algo);
  if (hash === "impure") return { kind: "impure" as const, method, algorithm };
  if (hash === "") return { kind: "floating" as const, method, algorithm };
  if (path === "") throw new SyntaxError("Fixed output has no path");
  return { kind: "fixed" as const, path, method, hash: parseHash(hash, algorithm) };
}

/** Reads a BasicDerivation named `ctx.name` (the drv path's name without `.drv`). */
export function readBasicDerivation(
  reader: WireReader,
  ctx: { storeDir: string; name: string },
): BasicDerivation {
  const outputs = new Map<string, DerivationOutput>();
  const count = reader.readCount("derivation outputs");
  for (let i = 0; i < count; i++) {
    const name = reader.readString("output name");
    const start = reader.offset;
    const path = reader.readString("output path");
    const algo = reader.readString("output hash algorithm");
    const hash = reader.readString("output hash");
    outputs.set(name, parseAt(start, () => parseOutput(ctx.storeDir, path, algo, hash)));
  }
  const inputSrcs = readStorePaths(reader, ctx);
  const system = reader.readString("system");
  const builder = reader.readString("builder");
  const args = reader.readStrings("arguments");
  const env = new Map<string, string>();
  const envCount = reader.readCount("environment");
  for (let i = 0; i < envCount; i++) {
    const key = reader.readString("environment name");
    env.set(key, reader.readString("environment value"));
  }
  return { name: ctx.name, outputs, inputSrcs, system, builder, args, env };
}

export function writeBasicDerivation(writer: WireWriter, drv: BasicDerivation): void {
  const outputs = sortedEntries(drv.outputs);
  writer.writeInt(outputs.length);
  for (const [name, output] of outputs) {
    writer.writeString(name);
    for (const field of outputFields(output)) writer.writeString(field);
  }
  writeStringSet(writer, drv.inputSrcs);
  writer.writeString(drv.system).writeString(drv.builder).writeStrings(drv.args);
  const env = sortedEntries(drv.env);
  writer.writeInt(env.length);
  for (const [key, value] of env) writer.writeString(key).writeString(value);
}
