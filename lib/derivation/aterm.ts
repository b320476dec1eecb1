/**
 * The ATerm text of a `.drv` file, byte for byte as Nix writes it:
 * `Derive([outputs],[inputDrvs],[inputSrcs],"system","builder",[args],[env])`.
 * Only builder, args and env keys and values are escaped; everything else is quoted raw.
 * The parser is strict: it accepts exactly what the printer produces (sorted, no duplicates,
 * no stray escapes), so `printDerivation(parseDerivation(text))` gives `text` back or throws.
 */

import { decodeBase16, Hash } from "../hashing/mod.ts";
import { type Derivation, type DerivationOutput, STRUCTURED_ATTRS_KEY } from "./derivation.ts";
import { parseMethodAlgo, printMethodAlgo } from "./_method.ts";
import { unreachable } from "../sys/mod.ts";
import { compareStrings, sortedKeys, sortedUnique } from "./_sort.ts";

/** A `.drv` text that is not a derivation Nix could have written; `offset` is in characters. */
export class DerivationSyntaxError extends SyntaxError {
  override name = "DerivationSyntaxError";

  constructor(
    /** `'name'` or `#n` (the n-th term of a stream). */
    readonly derivation: string,
    readonly offset: number,
    readonly expected: string,
    found: string,
  ) {
    super(
      `Invalid derivation ${derivation} at offset ${offset}: expected ${expected}, found ${found}`,
    );
  }
}

const ESCAPES: Record<string, string> = { '"': '"', "\\": "\\", n: "\n", r: "\r", t: "\t" };
const RAW_ESCAPED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Undoes the five escapes of a string already checked to hold only those. */
function unescapeString(raw: string, controls: boolean): string {
  // The five are JSON escapes too, and JSON.parse is fast; JSON refuses raw control characters.
  if (!controls) return JSON.parse(`"${raw}"`);
  // Split on escaped backslashes first: what remains has no `\\` pairs to confuse the rest.
  return raw.split("\\\\").map((part) =>
    part.replaceAll('\\"', '"').replaceAll("\\n", "\n").replaceAll("\\r", "\r")
      .replaceAll("\\t", "\t")
  ).join("\\");
}

class Reader {
  pos = 0;
  constructor(readonly text: string, public what: string) {}

  fail(expected: string, at = this.pos, found = this.describe(at)): never {
    throw new DerivationSyntaxError(this.what, at, expected, found);
  }

  describe(at: number): string {
    if (at >= this.text.length) return "the end of the text";
    const c = String.fromCodePoint(this.text.codePointAt(at)!);
    return `'${c < " " ? JSON.stringify(c).slice(1, -1) : c}'`;
  }

  literal(s: string): void {
    if (!this.text.startsWith(s, this.pos)) {
      for (let i = 0; i < s.length; i++) {
        if (this.text[this.pos + i] !== s[i]) this.fail(`'${s}'`, this.pos + i);
      }
    }
    this.pos += s.length;
  }

  /** A quoted string; `escaped` fields take the five escapes, the others none at all. */
  string(escaped: boolean): string {
    this.literal('"');
    const text = this.text;
    const start = this.pos;
    let backslashes = false;
    let controls = false;
    for (let i = start;; i++) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        this.pos = i + 1;
        const raw = text.slice(start, i);
        return backslashes ? unescapeString(raw, controls) : raw;
      }
      if (c === BACKSLASH) {
        if (!escaped) this.fail("a string without escapes", i, "'\\'");
        if (ESCAPES[text[i + 1]] === undefined) {
          const found = i + 1 < text.length ? `'\\${this.describe(i + 1).slice(1)}` : undefined;
          this.fail('an escape (\\" \\\\ \\n \\r \\t)', i, found);
        }
        backslashes = true;
        i++;
      } else if (c < 0x20) {
        if (escaped && RAW_ESCAPED[text[i]] !== undefined) {
          this.fail(
            `'${RAW_ESCAPED[text[i]]}'`,
            i,
            `a raw ${JSON.stringify(text[i]).slice(1, -1)}`,
          );
        }
        controls = true;
      } else if (Number.isNaN(c)) {
        this.fail("'\"'", i);
      }
    }
  }

  list<T>(item: () => T): T[] {
    this.literal("[");
    const items: T[] = [];
    if (this.text[this.pos] === "]") {
      this.pos++;
      return items;
    }
    for (;;) {
      items.push(item());
      const c = this.text[this.pos++];
      if (c === "]") return items;
      if (c !== ",") this.fail("',' or ']'", this.pos - 1);
    }
  }

  /** A list of strings that must be strictly sorted; `what` names them in errors. */
  sortedStrings<T>(what: string, item: () => [string, T]): [string, T][] {
    const starts: number[] = [];
    const items = this.list(() => {
      starts.push(this.pos);
      return item();
    });
    for (let i = 1; i < items.length; i++) {
      const order = compareStrings(items[i - 1][0], items[i][0]);
      if (order >= 0) {
        const found = order === 0
          ? `duplicate '${items[i][0]}'`
          : `'${items[i][0]}' after '${items[i - 1][0]}'`;
        this.fail(`${what} in sorted order`, starts[i], found);
      }
    }
    return items;
  }

  path(): string {
    const at = this.pos;
    const path = this.string(false);
    if (!path.startsWith("/")) this.fail("an absolute path", at, `'${path}'`);
    return path;
  }

  output(): [string, DerivationOutput] {
    const at = this.pos;
    this.literal("(");
    const name = this.string(false);
    this.literal(",");
    const pathAt = this.pos;
    const path = this.string(false);
    this.literal(",");
    const algoAt = this.pos;
    const algo = this.string(false);
    this.literal(",");
    const hashAt = this.pos;
    const hash = this.string(false);
    this.literal(")");
    if (path !== "" && !path.startsWith("/")) this.fail("an absolute path", pathAt, `'${path}'`);
    if (algo === "") {
      if (hash !== "") this.fail("an empty hash when the algorithm is empty", hashAt, `'${hash}'`);
      return [name, path === "" ? { kind: "deferred" } : { kind: "inputAddressed", path }];
    }
    let methodAlgo;
    try {
      methodAlgo = parseMethodAlgo(algo);
    } catch (e) {
      this.fail(
        "a hash algorithm such as 'r:sha256'",
        algoAt,
        `'${algo}' (${(e as Error).message})`,
      );
    }
    if (hash === "" || hash === "impure") {
      if (path !== "") this.fail(`an empty path for output '${name}'`, pathAt, `'${path}'`);
      return [name, { kind: hash === "" ? "floating" : "impure", ...methodAlgo }];
    }
    if (path === "") this.fail(`a path for fixed output '${name}'`, at, "an empty path");
    const { method, algorithm } = methodAlgo;
    try {
      if (!/^[0-9a-f]*$/.test(hash)) throw new SyntaxError("not lowercase base-16");
      return [name, { kind: "fixed", path, method, hash: new Hash(algorithm, decodeBase16(hash)) }];
    } catch {
      return this.fail(`a base-16 ${algorithm} hash`, hashAt, `'${hash}'`);
    }
  }

  derivation(): Omit<Derivation, "name"> {
    if (this.text.startsWith("DrvWithVersion(", this.pos)) {
      this.fail("'Derive('", this.pos, "'DrvWithVersion(' (dynamic derivations are not supported)");
    }
    this.literal("Derive(");
    const outputs = this.sortedStrings("outputs", () => this.output());
    this.literal(",");
    const inputDrvs = this.sortedStrings("input derivations", () => {
      this.literal("(");
      const path = this.path();
      this.literal(",");
      const outputs = this.sortedStrings("output names", () => [this.string(false), null]);
      this.literal(")");
      return [path, outputs.map(([name]) => name)];
    });
    this.literal(",");
    const inputSrcs = this.sortedStrings("input sources", () => [this.path(), null]);
    this.literal(",");
    const system = this.string(false);
    this.literal(",");
    const builder = this.string(true);
    this.literal(",");
    const args = this.list(() => this.string(true));
    this.literal(",");
    const env = this.sortedStrings("environment variables", () => {
      this.literal("(");
      const key = this.string(true);
      this.literal(",");
      const value = this.string(true);
      this.literal(")");
      return [key, value];
    });
    this.literal(")");
    return {
      outputs: new Map(outputs),
      inputDrvs: new Map(inputDrvs),
      inputSrcs: inputSrcs.map(([path]) => path),
      system,
      builder,
      args,
      env: new Map(env),
    };
  }
}

/** Parses the ATerm text of one derivation named `name`; throws a DerivationSyntaxError. */
export function parseDerivation(text: string, name: string): Derivation {
  const reader = new Reader(text, `'${name}'`);
  const drv = reader.derivation();
  if (reader.pos !== text.length) reader.fail("the end of the text");
  return { name, ...drv };
}

/** `env.name`, or for structured attrs the `name` in `__json`. */
function nameFromEnv(env: Map<string, string>): string | undefined {
  const name = env.get("name");
  if (name !== undefined) return name;
  try {
    const attrs = JSON.parse(env.get(STRUCTURED_ATTRS_KEY) ?? "null");
    return typeof attrs?.name === "string" ? attrs.name : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Parses one or more ATerm derivations, back to back or separated by whitespace; each one's
 * name is its `env.name` (or the `name` of its structured attrs), as `nix-instantiate` sets it.
 */
export function parseDerivations(text: string): Derivation[] {
  const reader = new Reader(text, "#1");
  const out: Derivation[] = [];
  const skipSpace = () => {
    while (/\s/.test(text[reader.pos] ?? "")) reader.pos++;
  };
  skipSpace();
  while (reader.pos < text.length) {
    reader.what = `#${out.length + 1}`;
    const start = reader.pos;
    const drv = reader.derivation();
    const name = nameFromEnv(drv.env) ??
      reader.fail("an environment variable 'name'", start, "none");
    out.push({ name, ...drv });
    skipSpace();
  }
  if (out.length === 0) reader.fail("'Derive('");
  return out;
}

/** What JSON.stringify escapes but ATerm keeps raw: other controls, lone surrogates. */
const JSON_ONLY_ESCAPES =
  // deno-lint-ignore no-control-regex -- exactly those characters are meant
  /[\x00-\x08\x0b\x0c\x0e-\x1f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function escapeString(s: string): string {
  if (!/["\\\n\r\t]/.test(s)) return s;
  // JSON.stringify escapes the same five the same way, natively; use it unless it would do more.
  if (!JSON_ONLY_ESCAPES.test(s)) return JSON.stringify(s).slice(1, -1);
  return s.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n")
    .replaceAll("\r", "\\r").replaceAll("\t", "\\t");
}

function printOutput(output: DerivationOutput, masked: boolean): string {
  const path = (p: string) => masked ? "" : p;
  switch (output.kind) {
    case "inputAddressed":
      return `"${path(output.path)}","",""`;
    case "fixed": {
      const algo = printMethodAlgo(output.method, output.hash.algorithm);
      return `"${path(output.path)}","${algo}","${output.hash.toString("base16")}"`;
    }
    case "floating":
      return `"","${printMethodAlgo(output.method, output.algorithm)}",""`;
    case "deferred":
      return `"","",""`;
    case "impure":
      return `"","${printMethodAlgo(output.method, output.algorithm)}","impure"`;
    default:
      return unreachable(output);
  }
}

/** Options of {@link printDerivation}. */
export interface PrintDerivationOptions {
  /** Blank every output path and every env var named after an output (for output hashing). */
  maskOutputs?: boolean;
}

/** The exact ATerm bytes Nix writes for `drv` (maps and sets are sorted here). */
export function printDerivation(drv: Derivation, options: PrintDerivationOptions = {}): string {
  const masked = options.maskOutputs ?? false;
  const outputs = sortedKeys(drv.outputs).map((name) =>
    `("${name}",${printOutput(drv.outputs.get(name)!, masked)})`
  );
  const inputDrvs = sortedKeys(drv.inputDrvs).map((path) =>
    `("${path}",[${sortedUnique(drv.inputDrvs.get(path)!).map((o) => `"${o}"`).join(",")}])`
  );
  const inputSrcs = sortedUnique(drv.inputSrcs).map((p) => `"${p}"`);
  const args = drv.args.map((a) => `"${escapeString(a)}"`);
  const env = sortedKeys(drv.env).map((key) => {
    const value = masked && drv.outputs.has(key) ? "" : drv.env.get(key)!;
    return `("${escapeString(key)}","${escapeString(value)}")`;
  });
  return `Derive([${outputs.join(",")}],[${inputDrvs.join(",")}],[${
    inputSrcs.join(",")
  }],"${drv.system}","${escapeString(drv.builder)}",[${args.join(",")}],[${env.join(",")}])`;
}
