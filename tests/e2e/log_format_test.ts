/** `kiln build --log-format`: Nix 2.8's internal-json event stream, compared with Nix's own. */

import { probeSandbox } from "../../lib/sandbox/mod.ts";
import { assert, assertEquals } from "../_assert.ts";
import { nixAvailable } from "../_nix.ts";
import { withNixAndKiln } from "./_drv.ts";

const ignore = !nixAvailable || !(await probeSandbox()).ok;

const CHAIN = `
let mk = name: script: deps: derivation {
  inherit name deps; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" script ];
};
  a = mk "a" "echo hello from a; echo a > $out" [];
  b = mk "b" "echo from b; echo second line; echo \${a} > $out" [ a ];
  bad = mk "bad" "echo failing; exit 3" [];
in { inherit b bad; }
`;

/**
 * The events both tools give for the same builds: the plan's messages, the builds activity and
 * each build's, their log lines, and progress from the first build on (Nix counts the expected
 * builds up as it discovers them; kiln knows them from its plan). Ids are numbered in order of
 * appearance, Nix's colours are taken out, and a progress line equal to the last one is dropped.
 */
function normalise(stderr: string): string[] {
  const kept = new Map<number, number>();
  const lines: string[] = [];
  let lastProgress = "";
  let building = false;
  for (const line of stderr.split("\n")) {
    if (!line.startsWith("@nix ")) continue;
    const json = JSON.parse(line.slice(5).replace(/\\u001b\[[0-9;]*m/g, ""));
    const id = kept.get(json.id);
    if (json.action === "msg") {
      if (json.level === 0 || json.level === 3) lines.push(JSON.stringify(json));
      continue;
    }
    if (json.action === "start") {
      if (json.type !== 104 && json.type !== 105) continue;
      building ||= json.type === 105;
      kept.set(json.id, kept.size + 1);
    } else if (id === undefined) continue;
    else if (json.action === "result" && json.type === 105) {
      const progress = JSON.stringify(json.fields);
      if (!building || progress === lastProgress) continue;
      lastProgress = progress;
    }
    lines.push(JSON.stringify({ ...json, id: kept.get(json.id) }));
  }
  return lines;
}

Deno.test({
  name: "kiln build --log-format internal-json prints the events Nix 2.8 prints",
  ignore,
  fn: () =>
    withNixAndKiln(async (nix, kiln) => {
      const file = `${nix.root}/chain.nix`;
      Deno.writeTextFileSync(file, CHAIN);
      const [b, bad] = (await nix.run("nix-instantiate", [file, "-A", "b", "-A", "bad"]))
        .trim().split("\n");
      await kiln.ok(["derivation", "add"], await nix.run("nix", ["show-derivation", "-r", b, bad]));
      const flags = ["--log-format", "internal-json", "-j", "1"];
      const nixRun = await nix.runRaw("nix-store", ["--realise", b, ...flags]);
      const kilnRun = await kiln.run(["build", "--sandbox", b, ...flags]);
      assertEquals(kilnRun.code, 0, kilnRun.stderr);
      const expected = normalise(nixRun.stderr);
      assert(expected.length > 10, nixRun.stderr);
      assertEquals(normalise(kilnRun.stderr), expected);

      // A failure: the same error message (no log tail: the log lines were in the stream).
      const [nixBad, kilnBad] = await Promise.all([
        nix.runRaw("nix-store", ["--realise", bad, ...flags]),
        kiln.run(["build", "--sandbox", bad, ...flags]),
      ]);
      assertEquals(kilnBad.code, nixBad.code);
      const errorOf = (stderr: string) =>
        normalise(stderr).map((line) => JSON.parse(line)).find((json) =>
          json.action === "msg" && json.level === 0
        );
      const nixError = errorOf(nixBad.stderr);
      assertEquals(errorOf(kilnBad.stderr), nixError);
    }),
});
