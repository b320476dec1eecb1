import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "../_assert.ts";
import type { KilnStore } from "../_kiln.ts";
import { addAll, type DrvSet, type TestDrv, withStore } from "./_drv.ts";

const BUILDERS = 3;
const ROUNDS = 8;

/** Six leaves, eight middles on two leaves each (one read, one referred to). */
function makeShared(set: DrvSet): TestDrv[] {
  const leaves = [...Array(6).keys()].map((i) =>
    set.add({ name: `leaf-${i}`, script: `echo leaf-${i} > $out` })
  );
  return [...Array(8).keys()].map((i) => {
    const [read, kept] = [leaves[i % 6], leaves[(i + 1) % 6]];
    return set.add({
      name: `middle-${i}`,
      inputs: [read, kept],
      script: `${copy([read.outputs.out])} > $out; echo ${kept.outputs.out} >> $out`,
    });
  });
}

/** Builder `b`'s top of round `r`: on six middles, referring to three of them. */
function makeTop(set: DrvSet, middles: TestDrv[], b: number, r: number): TestDrv {
  const inputs = middles.slice(b, b + 6);
  const kept = inputs.filter((_, i) => i % 2 === 0).map((d) => d.outputs.out);
  const read = inputs.filter((_, i) => i % 2 === 1).map((d) => d.outputs.out);
  return set.add({
    name: `top-${b}-${r}`,
    inputs,
    script: `echo ${kept.join(" ")} > $out; ${copy(read)} >> $out`,
  });
}

/** A shell command printing the lines of `files` (the builders have no PATH: no `cat`). */
function copy(files: string[]): string {
  return `for f in ${files.join(" ")}; do while read -r l; do echo "$l"; done < $f; done`;
}

Deno.test("kiln store gc in a loop never races three processes building and substituting", () =>
  withStore(async (store, set) => {
    const middles = makeShared(set);
    const tops = [...Array(BUILDERS).keys()].map((b) =>
      [...Array(ROUNDS).keys()].map((r) => makeTop(set, middles, b, r))
    );
    await addAll(store, set);
    const gcroots = join(store.env.KILN_STATE_DIR, "gcroots");
    Deno.mkdirSync(gcroots, { recursive: true });
    for (const [i, drv] of [...set.all.values()].entries()) {
      Deno.symlinkSync(drv.path, join(gcroots, `drv-${i}`));
    }
    const substituteFlags = await makeCache(store, middles.slice(4));

    let running = BUILDERS;
    const builder = async (b: number) => {
      try {
        for (let r = 0; r < ROUNDS; r++) {
          const flags = b === BUILDERS - 1 ? substituteFlags : [];
          const link = join(store.root, `result-${b}`);
          const top = tops[b][r];
          const args = ["build", "--no-sandbox", ...flags, "-o", link, top.path];
          const built = await store.run(args);
          assertEquals([built.code, built.stdout], [0, `${top.outputs.out}\n`], built.stderr);
          if (r === 0 && flags.length > 0) {
            // Only this builder needs middle-7, collected after the cache was made.
            assertStringIncludes(built.stderr, `copying path '${middles[7].outputs.out}'`);
          }
        }
      } finally {
        running--;
      }
    };
    const collector = async () => {
      let collections = 0;
      while (running > 0 || collections === 0) {
        const collected = await store.run(["store", "gc"]);
        assertEquals(collected.code, 0, collected.stderr);
        collections++;
      }
    };
    await Promise.all([...[...Array(BUILDERS).keys()].map(builder), collector()]);

    const verified = await store.run(["store", "verify", "--check-contents", "--all"]);
    const steps = ["reading the Nix store", "checking path existence", "checking link hashes"];
    const progress = [...steps, "checking store hashes"].map((l) => `${l}...\n`).join("");
    assertEquals([verified.code, verified.stderr], [0, progress]);
    for (let b = 0; b < BUILDERS; b++) {
      const link = join(store.root, `result-${b}`);
      assertEquals(Deno.readLinkSync(link), tops[b][ROUNDS - 1].outputs.out);
      const closure = await store.ok(["store", "query", "--requisites", Deno.readLinkSync(link)]);
      for (const path of closure.split("\n").filter((l) => l !== "")) {
        assert(Deno.statSync(path), `${path} in the closure of ${link} is gone`);
      }
    }
  }));

/** Builds `drvs`, copies their closures to a signed file:// cache, collects them; its flags. */
async function makeCache(store: KilnStore, drvs: TestDrv[]): Promise<string[]> {
  const outputs = drvs.map((d) => d.outputs.out);
  await store.ok(["build", "--no-sandbox", ...drvs.map((d) => d.path)]);
  const sk = join(store.root, "sk");
  const pk = join(store.root, "pk");
  await store.ok(["key", "generate", "test-1", "--secret-file", sk, "--public-file", pk]);
  const cache = join(store.root, "cache");
  await store.ok(["copy", "--to", `file://${cache}?secret-key=${sk}`, ...outputs]);
  await store.ok(["store", "gc"]);
  const key = Deno.readTextFileSync(pk);
  return ["--substituters", `file://${cache}`, "--option", "trusted-public-keys", key];
}
