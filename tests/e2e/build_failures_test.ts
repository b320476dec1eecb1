import { makeFixedOutputPath, parseHash } from "../../lib/hashing/mod.ts";
import { hashPath } from "../../lib/store/mod.ts";
import { assert, assertEquals, assertStringIncludes } from "../_assert.ts";
import { addAll, withStore } from "./_drv.ts";

/** sha256 of "x\n", as SRI. */
const X_FLAT = "sha256-c8s4WKaHqElMozIwUwFigvPa051Cz2LKTnndoqrH2aw=";
const WRONG = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

Deno.test("kiln build kills builders on timeout, silence and log limit, with Nix's messages", () =>
  withStore(async (store, set) => {
    // Each builder runs until kiln stops it, so no clock's margin depends on the machine.
    const total = set.add({
      name: "total",
      script: "while :; do echo tick; /bin/sleep 0.2; done",
    });
    const silent = set.add({ name: "silent", script: "echo hi; exec /bin/sleep 3600" });
    const loud = set.add({ name: "loud", script: "while :; do echo 0123456789; done" });
    const sig = set.add({ name: "sig", script: "kill -SEGV $$" });
    await addAll(store, set);
    const goal = (p: string) => `building of '${p}!*' from .drv file`;
    const [t, s, l, g] = await Promise.all([
      store.run(["build", "--no-sandbox", "--timeout", "1", total.path]),
      store.run(["build", "--no-sandbox", "--max-silent-time", "1", silent.path]),
      store.run(["build", "--no-sandbox", "--max-build-log-size", "1000", loud.path]),
      store.run(["build", "--no-sandbox", sig.path]),
    ]);
    assertEquals(t.code, 101, t.stderr);
    assertStringIncludes(t.stderr, `error: ${goal(total.path)} timed out after 1 seconds\n`);
    assertEquals(s.code, 101, s.stderr);
    assertStringIncludes(
      s.stderr,
      `error: ${goal(silent.path)} timed out after 1 seconds of silence\n`,
    );
    assertEquals(l.code, 1, l.stderr);
    assertStringIncludes(
      l.stderr,
      `error: ${goal(loud.path)} killed after writing more than 1000 bytes of log output\n`,
    );
    assertEquals(g.code, 100, g.stderr);
    assertStringIncludes(
      g.stderr,
      `error: builder for '${sig.path}' failed due to signal 11 (Segmentation fault)\n`,
    );
  }));

Deno.test("kiln build checks fixed outputs: a mismatch is 102, a failing builder 1", () =>
  withStore(async (store, set) => {
    const good = set.add({
      name: "good",
      script: "echo x > $out",
      fixed: { method: "flat", hash: X_FLAT },
    });
    const bad = set.add({
      name: "bad",
      script: "echo x > $out",
      fixed: { method: "flat", hash: WRONG },
    });
    const failing = set.add({
      name: "failing",
      script: "exit 1",
      fixed: { method: "flat", hash: X_FLAT.replace("c8s", "c8t") },
    });
    await addAll(store, set);
    assertEquals(await store.ok(["build", "--no-sandbox", good.path]), `${good.outputs.out}\n`);
    const info = JSON.parse(await store.ok(["store", "path-info", "--json", good.outputs.out]));
    assertEquals(info[good.outputs.out].ca, `fixed:${parseHash(X_FLAT).toNix32Prefixed()}`);

    const r = await store.run(["build", "--no-sandbox", bad.path]);
    assertEquals(r.code, 102, r.stderr);
    assertStringIncludes(
      r.stderr,
      `error: hash mismatch in fixed-output derivation '${bad.path}':\n` +
        `  specified: ${WRONG}\n     got:    ${X_FLAT}\n`,
    );
    // As Nix 2.8: the wrong output is registered under the path its contents give.
    const real = makeFixedOutputPath(store.storeDir, {
      method: "flat",
      hash: parseHash(X_FLAT),
      name: "bad",
    });
    assertEquals(await store.ok(["store", "path-info", real]) !== "", true);
    assertEquals((await store.run(["store", "path-info", bad.outputs.out])).code, 1);

    const f = await store.run(["build", "--no-sandbox", failing.path]);
    assertEquals(f.code, 1, f.stderr);
    assertStringIncludes(f.stderr, `builder for '${failing.path}' failed with exit code 1`);
  }));

Deno.test("kiln build verifies recursive (nar) fixed outputs", () =>
  withStore(async (store, set) => {
    const dir = Deno.makeTempDirSync();
    Deno.writeTextFileSync(`${dir}/f`, "x\n");
    const { hash } = hashPath(`${dir}/f`);
    Deno.removeSync(dir, { recursive: true });
    const nar = set.add({
      name: "nar",
      script: "echo x > $out",
      fixed: { method: "nar", hash: hash.toString("sri") },
    });
    await addAll(store, set);
    const r = await store.run(["build", "--no-sandbox", nar.path]);
    assertEquals(r.code, 0, r.stderr);
    assert(nar.outputs.out.endsWith("-nar"));
  }));

Deno.test("kiln build ends a run with several failed targets as Nix does", () =>
  withStore(async (store, set) => {
    const bad = set.add({ name: "bad", script: "exit 3" });
    const bad2 = set.add({ name: "bad2", script: "exit 4" });
    await addAll(store, set);
    const r = await store.run(["build", "--no-sandbox", "-k", bad.path, bad2.path]);
    assertEquals(r.code, 100, r.stderr);
    const [first, second] = [bad.path, bad2.path].sort();
    assertStringIncludes(r.stderr, `error: build of '${first}', '${second}' failed\n`);
    const one = await store.run(["build", "--no-sandbox", bad.path]);
    assert(!one.stderr.includes("error: build of"), one.stderr);
  }));
