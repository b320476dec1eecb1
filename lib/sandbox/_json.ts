/**
 * JSON as Nix's nlohmann::json sees it, for `.attrs.json` and `.attrs.sh`: integers stay exact
 * (bigint), floats stay floats (`1.0` prints as `1.0`), objects keep their keys sorted byte-wise
 * (std::map), and `dump()` prints compact text byte for byte as `json.dump()` does.
 */

import { unreachable } from "../sys/mod.ts";

/** A JSON value; objects are arrays of `[key, value]` pairs sorted by the keys' UTF-8 bytes. */
export type JsonValue =
  | null
  | boolean
  | string
  | { kind: "int"; value: bigint }
  | { kind: "float"; value: number }
  | JsonValue[]
  | JsonObject;

/** A JSON object: entries sorted by key (UTF-8 byte order), no duplicate keys. */
export interface JsonObject {
  kind: "object";
  entries: [string, JsonValue][];
}

/** Parses JSON text; throws a SyntaxError naming the offset on bad input. */
export function parseJson(text: string): JsonValue {
  const parser = new Parser(text);
  parser.skipSpace();
  const value = parser.value();
  parser.skipSpace();
  if (parser.pos !== text.length) parser.fail("trailing text");
  return value;
}

/** Compact text as nlohmann's `dump()` writes it. */
export function dumpJson(value: JsonValue): string {
  if (value === null) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(dumpJson).join(",")}]`;
  switch (value.kind) {
    case "int":
      return value.value.toString();
    case "float":
      return dumpFloat(value.value);
    case "object":
      return `{${value.entries.map(([k, v]) => `${JSON.stringify(k)}:${dumpJson(v)}`).join(",")}}`;
    default:
      return unreachable(value);
  }
}

/** Builds an object value from entries in any order; a later duplicate key wins. */
export function makeJsonObject(entries: Iterable<[string, JsonValue]>): JsonObject {
  const map = new Map<string, JsonValue>();
  for (const [k, v] of entries) map.set(k, v);
  return { kind: "object", entries: [...map].sort(([a], [b]) => compareUtf8(a, b)) };
}

/** Whether `value` is a JSON object. */
export function isJsonObject(value: JsonValue): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    value.kind === "object";
}

/** Looks a key up in an object. */
export function getJsonKey(object: JsonObject, key: string): JsonValue | undefined {
  return object.entries.find(([k]) => k === key)?.[1];
}

/** Orders strings by their UTF-8 bytes (= code points), as std::string comparison does. */
export function compareUtf8(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** nlohmann's `to_chars`: shortest digits; `1.0`, `0.0001`, `1e-05`, `1e+16` forms. */
function dumpFloat(x: number): string {
  if (!Number.isFinite(x)) return "null";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  const [mantissa, exp] = Math.abs(x).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const k = digits.length;
  const n = Number(exp) + 1; // position of the decimal point relative to the digits
  const MIN_EXP = -4;
  const MAX_EXP = 15;
  if (k <= n && n <= MAX_EXP) return `${sign}${digits}${"0".repeat(n - k)}.0`;
  if (0 < n && n <= MAX_EXP) return `${sign}${digits.slice(0, n)}.${digits.slice(n)}`;
  if (MIN_EXP < n && n <= 0) return `${sign}0.${"0".repeat(-n)}${digits}`;
  const e = n - 1;
  const body = k === 1 ? digits : `${digits[0]}.${digits.slice(1)}`;
  return `${sign}${body}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
}

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;
// JSON forbids raw control characters inside strings.
// deno-lint-ignore no-control-regex
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

class Parser {
  pos = 0;
  constructor(readonly text: string) {}

  fail(what: string): never {
    throw new SyntaxError(`Invalid JSON at offset ${this.pos}: ${what}`);
  }

  skipSpace(): void {
    while (this.pos < this.text.length && " \t\n\r".includes(this.text[this.pos])) this.pos++;
  }

  value(): JsonValue {
    const c = this.text[this.pos];
    if (c === "{") return this.object();
    if (c === "[") return this.array();
    if (c === '"') return this.string();
    if (c === "-" || (c >= "0" && c <= "9")) return this.number();
    for (const [word, value] of [["true", true], ["false", false], ["null", null]] as const) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    return this.fail(c === undefined ? "unexpected end" : `unexpected '${c}'`);
  }

  object(): JsonObject {
    this.pos++;
    const entries: [string, JsonValue][] = [];
    this.skipSpace();
    if (this.text[this.pos] === "}") {
      this.pos++;
      return makeJsonObject(entries);
    }
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] !== '"') this.fail("expected a key");
      const key = this.string();
      this.skipSpace();
      if (this.text[this.pos++] !== ":") this.fail("expected ':'");
      this.skipSpace();
      entries.push([key, this.value()]);
      this.skipSpace();
      const c = this.text[this.pos++];
      if (c === "}") return makeJsonObject(entries);
      if (c !== ",") this.fail("expected ',' or '}'");
    }
  }

  array(): JsonValue[] {
    this.pos++;
    const items: JsonValue[] = [];
    this.skipSpace();
    if (this.text[this.pos] === "]") {
      this.pos++;
      return items;
    }
    for (;;) {
      this.skipSpace();
      items.push(this.value());
      this.skipSpace();
      const c = this.text[this.pos++];
      if (c === "]") return items;
      if (c !== ",") this.fail("expected ',' or ']'");
    }
  }

  string(): string {
    STRING.lastIndex = this.pos;
    const match = STRING.exec(this.text);
    if (!match) this.fail("bad string");
    this.pos += match[0].length;
    return JSON.parse(match[0]);
  }

  number(): JsonValue {
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (!match) this.fail("bad number");
    this.pos += match[0].length;
    if (match[1] === undefined && match[2] === undefined) {
      const value = BigInt(match[0]);
      if (value >= INT64_MIN && value <= UINT64_MAX) return { kind: "int", value };
    }
    return { kind: "float", value: Number(match[0]) };
  }
}
