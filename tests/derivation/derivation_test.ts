import { type Derivation, parseDerivation, structuredAttrs } from "../../lib/derivation/mod.ts";
import { assertEquals, assertThrows } from "../_assert.ts";

/** A derivation named x with environment `env` (its strings escaped as JSON escapes them). */
function withEnv(env: Record<string, string>): Derivation {
  const pairs = Object.entries(env).map(([k, v]) => `(${JSON.stringify(k)},${JSON.stringify(v)})`);
  return parseDerivation(`Derive([],[],[],"x86_64-linux","/bin/sh",[],[${pairs.join(",")}])`, "x");
}

Deno.test("structuredAttrs() parses __json, and is undefined without it", () => {
  assertEquals(structuredAttrs(withEnv({ name: "x" })), undefined);
  const attrs = { name: "x", outputChecks: { out: { maxSize: 10 } }, list: [1, "a"] };
  assertEquals(structuredAttrs(withEnv({ __json: JSON.stringify(attrs) })), attrs);
});

Deno.test("structuredAttrs() rejects __json that is not a JSON object", () => {
  for (const text of ["[1]", "null", "3"]) {
    assertThrows(
      () => structuredAttrs(withEnv({ __json: text })),
      TypeError,
      "Attribute '__json' of derivation 'x' is not a JSON object",
    );
  }
  assertThrows(() => structuredAttrs(withEnv({ __json: "{" })), SyntaxError);
});
