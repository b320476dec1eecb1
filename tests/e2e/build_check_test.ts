import { probeSandbox } from "../../lib/sandbox/mod.ts";
import { assert, assertEquals, assertStringIncludes } from "../_assert.ts";
import { addAll, withStore } from "./_drv.ts";

const ignore = !(await probeSandbox()).ok;

const NONDETERMINISTIC = "/bin/date +%N > $out";

Deno.test({
  name: "kiln build --check rebuilds and compares: 0 when equal, 104 when not",
  ignore,
  fn: () =>
    withStore(async (store, set) => {
      const same = set.add({ name: "same", script: "echo same > $out" });
      const nondet = set.add({ name: "nondet", script: NONDETERMINISTIC });
      await addAll(store, set);
      await store.ok(["build", "--no-sandbox", same.path, nondet.path]);
      const before = Deno.readTextFileSync(store.physical(nondet.outputs.out));

      const ok = await store.run(["build", "--check", same.path]);
      assertEquals(ok.code, 0, ok.stderr);
      assertStringIncludes(ok.stderr, `checking outputs of '${same.path}'...`);
      assertEquals(ok.stdout, `${same.outputs.out}\n`);

      const bad = await store.run(["build", "--check", nondet.path]);
      assertEquals(bad.code, 104, bad.stderr);
      assertStringIncludes(
        bad.stderr,
        `error: derivation '${nondet.path}' may not be deterministic: output '${nondet.outputs.out}' differs\n`,
      );
      assertEquals(Deno.readTextFileSync(store.physical(nondet.outputs.out)), before);

      const kept = await store.run(["build", "--check", "-K", nondet.path]);
      assertEquals(kept.code, 104, kept.stderr);
      assertStringIncludes(kept.stderr, `differs from '${nondet.outputs.out}.check'`);
      assert(Deno.statSync(store.physical(nondet.outputs.out) + ".check").isFile);
      for (const m of kept.stderr.matchAll(/keeping build directory '([^']+)'/g)) {
        Deno.removeSync(m[1], { recursive: true });
      }

      const unsandboxed = await store.run(["build", "--check", "--no-sandbox", same.path]);
      assertEquals(unsandboxed.code, 1);
      assertStringIncludes(unsandboxed.stderr, "--check needs the sandbox");
    }),
});

Deno.test("kiln build --rounds builds several times and compares", () =>
  withStore(async (store, set) => {
    const same = set.add({ name: "same", script: "echo same > $out" });
    const nondet = set.add({ name: "nondet", script: NONDETERMINISTIC });
    await addAll(store, set);
    const json = JSON.parse(
      await store.ok(["build", "--no-sandbox", "--rounds", "3", "--json", same.path]),
    );
    assertEquals(json[0].timesBuilt, 3);
    assertEquals(Deno.readTextFileSync(store.physical(same.outputs.out)), "same\n");
    const r = await store.run(["build", "--no-sandbox", "--rounds", "2", nondet.path]);
    assertEquals(r.code, 104, r.stderr);
    assertStringIncludes(r.stderr, "may not be deterministic");
    assertEquals((await store.run(["store", "path-info", nondet.outputs.out])).code, 1);
  }));

Deno.test({
  name: "kiln build --repair replaces corrupt outputs, inputs of valid derivations too",
  ignore,
  fn: () =>
    withStore(async (store, set) => {
      const a = set.add({ name: "a", script: "echo a > $out" });
      const b = set.add({ name: "b", inputs: [a], script: "echo b > $out" });
      await addAll(store, set);
      await store.ok(["build", b.path]);
      const file = store.physical(a.outputs.out);
      Deno.chmodSync(file, 0o644);
      Deno.writeTextFileSync(file, "corrupt\n");
      const r = await store.run(["build", "--repair", b.path]);
      assertEquals(r.code, 0, r.stderr);
      assertStringIncludes(r.stderr, `building '${a.path}'...`);
      assert(!r.stderr.includes(`building '${b.path}'`), r.stderr);
      assertEquals(Deno.readTextFileSync(file), "a\n");
      assertEquals(Deno.statSync(file).mode! & 0o777, 0o444);
      const again = await store.run(["build", "--repair", b.path]);
      assert(!again.stderr.includes("building"), again.stderr);
    }),
});
