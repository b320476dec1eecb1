import { assert } from "../_assert.ts";
import { SETTINGS } from "../../lib/cli/config.ts";
import { COMMANDS } from "../../lib/cli/main.ts";

const README = Deno.readTextFileSync(new URL("../../README.md", import.meta.url));

Deno.test("README documents every command", () => {
  for (const command of COMMANDS) {
    assert(
      README.includes(`kiln ${command.name}`),
      `README does not mention 'kiln ${command.name}'`,
    );
  }
});

Deno.test("README's settings table lists every setting with its default", () => {
  for (const setting of SETTINGS) {
    const row = README.split("\n").find((line) =>
      line.replace(/\s+/g, " ").startsWith(`| \`${setting.name}\` |`)
    );
    assert(row !== undefined, `README has no settings row for '${setting.name}'`);
    const shownDefault = setting.default === "" ? "(empty)" : `\`${setting.default}\``;
    assert(row.includes(shownDefault), `README's row for '${setting.name}' lacks ${shownDefault}`);
  }
});
