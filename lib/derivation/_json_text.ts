/**
 * JSON text without loss, for structured attributes and derivation documents: numbers that a
 * JS number would change (big integers, `1.0`) keep their digits, duplicate keys are an error,
 * and printing sorts keys byte-wise and escapes as nlohmann::json (Nix's JSON library) does.
 */

import { compareStrings } from "./_sort.ts";

/** A number whose text a JS number cannot keep (e.g. 12345678901234567, 1.0). */
export class JsonNumber {
  constructor(readonly text: string) {}
}

/** A parsed JSON value: objects are plain objects, numbers JS numbers or {@link JsonNumber}. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonNumber
  | JsonValue[]
  | { [key: string]: JsonValue };

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const SPACE = /[ \t\n\r]*/y;

/** Parses JSON text; throws a SyntaxError with the offset and what was expected. */
export function parseJsonText(text: string): JsonValue {
  let pos = 0;
  const fail = (expected: string): never => {
    const found = pos >= text.length ? "the end of the text" : `'${text[pos]}'`;
    throw new SyntaxError(`Invalid JSON at offset ${pos}: expected ${expected}, found ${found}`);
  };
  const space = () => {
    SPACE.lastIndex = pos;
    SPACE.test(text);
    pos = SPACE.lastIndex;
  };
  const match = (re: RegExp): string | undefined => {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) return undefined;
    pos = re.lastIndex;
    return m[0];
  };
  const string = (): string => {
    // Find the end by hand (a regex overflows its stack on long strings), then decode.
    if (text[pos] !== '"') fail("a string");
    const start = pos;
    for (let i = pos + 1; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        pos = i + 1;
        return JSON.parse(text.slice(start, pos));
      }
      if (c < 0x20) {
        pos = i;
        fail("a string without raw control characters");
      }
      if (c === 0x5c) {
        const e = text[i + 1];
        const ok = e === "u"
          ? /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))
          : `"\\/bfnrt`.includes(e);
        if (!ok || e === undefined) {
          pos = i;
          fail("a JSON escape");
        }
        i += e === "u" ? 5 : 1;
      }
    }
    pos = text.length;
    return fail("'\"'");
  };
  const value = (): JsonValue => {
    space();
    const c = text[pos];
    if (c === "{") {
      pos++;
      const obj: { [key: string]: JsonValue } = {};
      space();
      if (text[pos] === "}") {
        pos++;
        return obj;
      }
      for (;;) {
        space();
        const keyAt = pos;
        const key = string();
        if (Object.hasOwn(obj, key)) {
          pos = keyAt;
          fail(`no duplicate key '${key}'`);
        }
        space();
        if (text[pos++] !== ":") pos--, fail("':'");
        Object.defineProperty(obj, key, {
          value: value(),
          enumerable: true,
          writable: true,
          configurable: true,
        });
        space();
        const next = text[pos++];
        if (next === "}") return obj;
        if (next !== ",") pos--, fail("',' or '}'");
      }
    }
    if (c === "[") {
      pos++;
      const arr: JsonValue[] = [];
      space();
      if (text[pos] === "]") {
        pos++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        space();
        const next = text[pos++];
        if (next === "]") return arr;
        if (next !== ",") pos--, fail("',' or ']'");
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return v;
      }
    }
    const digits = match(NUMBER);
    if (digits === undefined) return fail("a JSON value");
    const n = Number(digits);
    return String(n) === digits ? n : new JsonNumber(digits);
  };
  const result = value();
  space();
  if (pos < text.length) fail("the end of the text");
  return result;
}

function printString(s: string): string {
  // JSON.stringify escapes exactly as nlohmann does: \" \\ \b \f \n \r \t, other controls \u00xx.
  return JSON.stringify(s);
}

/**
 * Prints `value` as nlohmann's `dump()` would: keys sorted byte-wise, compact (`indent`
 * undefined) or pretty with `indent` spaces.
 */
export function printJsonText(value: unknown, indent?: number): string {
  const nl = indent === undefined ? "" : "\n";
  const colon = indent === undefined ? ":" : ": ";
  const print = (v: unknown, depth: number): string => {
    if (v === null) return "null";
    if (typeof v === "string") return printString(v);
    if (typeof v === "boolean") return String(v);
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new TypeError(`Cannot print ${v} as JSON`);
      return String(v);
    }
    if (v instanceof JsonNumber) return v.text;
    const pad = indent === undefined ? "" : " ".repeat(indent * (depth + 1));
    const end = indent === undefined ? "" : " ".repeat(indent * depth);
    if (Array.isArray(v)) {
      if (v.length === 0) return "[]";
      return `[${nl}${v.map((x) => pad + print(x, depth + 1)).join("," + nl)}${nl}${end}]`;
    }
    if (typeof v === "object") {
      const keys = Object.keys(v).sort(compareStrings);
      if (keys.length === 0) return "{}";
      const record = v as Record<string, unknown>;
      const items = keys.map((k) => pad + printString(k) + colon + print(record[k], depth + 1));
      return `{${nl}${items.join("," + nl)}${nl}${end}}`;
    }
    throw new TypeError(`Cannot print a ${typeof v} as JSON`);
  };
  return print(value, 0);
}
