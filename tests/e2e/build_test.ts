import { join } from "node:path";
import { probeSandbox, type SandboxBackend } from "../../lib/sandbox/mod.ts";
import { assert, assertEquals, assertStringIncludes } from "../_assert.ts";
import { addAll, DrvSet, type TestDrv, withStore } from "./_drv.ts";
import { KilnStore } from "../_kiln.ts";
import { printDerivation } from "../../lib/derivation/mod.ts";
import { pathExists } from "../../lib/store/mod.ts";
import { buildLogDir, buildLogPath } from "../../lib/scheduler/mod.ts";

const works = new Map<SandboxBackend, boolean>();
for (const backend of ["bwrap", "namespaces"] as const) {
  works.set(backend, (await probeSandbox({ backend })).ok);
}

/** Makes `store`'s kiln sandbox its builds with `backend`. */
function useBackend(store: KilnStore, backend: SandboxBackend): void {
  store.env.KILN_CONFIG = `${store.env.KILN_CONFIG ?? ""}sandbox-backend = ${backend}\n`;
}

async function pathInfo(store: KilnStore, path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await store.ok(["store", "path-info", "--json", path]))[path];
}

// Without the sandbox, then in it with each backend (ignored where it does not work here).
const MODES: [boolean, SandboxBackend | undefined][] = [
  [false, undefined],
  [true, "bwrap"],
  [true, "namespaces"],
];
for (const [sandbox, backend] of MODES) {
  const flag = sandbox ? "--sandbox" : "--no-sandbox";
  const variant = backend === undefined ? flag : `${flag} (${backend})`;
  Deno.test({
    name: `kiln build ${variant} builds a derivation, registers and prints its output`,
    ignore: backend !== undefined && !works.get(backend),
    fn: () =>
      withStore(async (store, set) => {
        if (backend) useBackend(store, backend);
        const a = set.add({ name: "a", script: "echo building a; echo hello > $out" });
        await addAll(store, set);
        const r = await store.run(["build", flag, a.path]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(r.stdout, `${a.outputs.out}\n`);
        assertStringIncludes(r.stderr, `building '${a.path}'...`);
        assertEquals(Deno.readTextFileSync(store.physical(a.outputs.out)), "hello\n");
        assertEquals(Deno.statSync(store.physical(a.outputs.out)).mode! & 0o777, 0o444);
        const info = await pathInfo(store, a.outputs.out);
        assertEquals(info.deriver, a.path);
        assertEquals(info.ultimate, true);
        assertEquals(await store.ok(["log", a.path]), "building a\n");
        assertEquals(await store.ok(["log", a.outputs.out]), "building a\n");
        // A silent builder leaves no log file; its log is empty, as Nix's empty log file is.
        const silent = set.add({ name: "silent", script: "echo quiet > $out" });
        await addAll(store, set);
        await store.ok(["build", flag, silent.path]);
        assert(
          !pathExists(buildLogPath(buildLogDir(store.env.KILN_STATE_DIR), silent.path)),
        );
        assertEquals(await store.ok(["log", silent.path]), "");
        assertEquals(await store.ok(["log", silent.outputs.out]), "");
        const never = set.add({ name: "never", script: "echo > $out" });
        // A silent builder that fails keeps its (empty) log, as in Nix.
        const quietFailure = set.add({ name: "quiet-failure", script: "exit 1" });
        await addAll(store, set);
        const none = await store.run(["log", never.path]);
        assertEquals(none.code, 1);
        assertStringIncludes(none.stderr, `build log of '${never.path}' is not available`);
        assertEquals((await store.run(["build", flag, quietFailure.path])).code, 100);
        assertEquals(await store.ok(["log", quietFailure.path]), "");
        // Built once: a second run finds it valid and runs nothing.
        const again = await store.run(["build", flag, a.path]);
        assertEquals(again.stdout, `${a.outputs.out}\n`);
        assert(!again.stderr.includes("building"), again.stderr);
      }),
  });

  Deno.test({
    name: `kiln build ${variant} warns but succeeds when the build log cannot be written`,
    ignore: backend !== undefined && !works.get(backend),
    fn: () =>
      withStore(async (store, set) => {
        if (backend) useBackend(store, backend);
        const a = set.add({ name: "a", script: "echo building a; echo hello > $out" });
        await addAll(store, set);
        // A file where the log directory should be: no user, root included, can write there.
        Deno.mkdirSync(join(store.env.KILN_STATE_DIR, "log"), { recursive: true });
        Deno.writeTextFileSync(buildLogDir(store.env.KILN_STATE_DIR), "");
        const r = await store.run(["build", flag, a.path]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(r.stdout, `${a.outputs.out}\n`);
        assertStringIncludes(r.stderr, `warning: cannot write the build log of '${a.path}'`);
      }),
  });

  Deno.test({
    name: `kiln build ${variant} scans references to inputs and to the output itself`,
    ignore: backend !== undefined && !works.get(backend),
    fn: () =>
      withStore(async (store, set) => {
        if (backend) useBackend(store, backend);
        const a = set.add({ name: "a", script: "echo a > $out" });
        const b = set.add({
          name: "b",
          outputs: ["out", "dev"],
          inputs: [a],
          script: `echo ${a.outputs.out} > $out; read x < $out; ` +
            `{ echo $out; echo $dev; } > $dev`,
        });
        const c = set.add({ name: "c", inputs: [a], script: "echo none > $out" });
        await addAll(store, set);
        const out = await store.ok(["build", flag, b.with("dev"), c.path]);
        assertEquals(out, `${b.outputs.dev}\n${c.outputs.out}\n`);
        assertEquals((await pathInfo(store, b.outputs.out)).references, [a.outputs.out]);
        assertEquals(
          (await pathInfo(store, b.outputs.dev)).references,
          [b.outputs.out, b.outputs.dev].sort(),
        );
        assertEquals((await pathInfo(store, c.outputs.out)).references, []);
      }),
  });
}

Deno.test("kiln build stops at the first failure, or keeps going with -k", () =>
  withStore(async (store, set) => {
    const bad = set.add({ name: "bad", script: "echo one; echo two; exit 3" });
    const top = set.add({ name: "top", inputs: [bad], script: "echo > $out" });
    const good = set.add({ name: "good", script: "echo good > $out" });
    const after = set.add({ name: "after", inputs: [good], script: "echo > $out" });
    await addAll(store, set);
    const r = await store.run(["build", "--no-sandbox", "-j1", top.path, after.path]);
    assertEquals(r.code, 100, r.stderr);
    assertEquals(r.stdout, "");
    assertStringIncludes(
      r.stderr,
      `error: builder for '${bad.path}' failed with exit code 3;\nlast 2 log lines:\n> one\n> two\n` +
        `For full logs, run 'kiln log ${bad.path}'.`,
    );
    assertStringIncludes(r.stderr, `error: 1 dependencies of derivation '${top.path}' failed`);
    const k = await store.run(["build", "--no-sandbox", "-j1", "-k", top.path, after.path]);
    assertEquals(k.code, 100, k.stderr);
    assertEquals((await pathInfo(store, after.outputs.out)).deriver, after.path);
    assertEquals(await store.ok(["log", bad.path]), "one\ntwo\n");
  }));

Deno.test("kiln build --json and -o report each derivation and link its outputs", () =>
  withStore(async (store, set) => {
    const m = set.add({
      name: "m",
      outputs: ["out", "dev"],
      script: "echo o > $out; echo d > $dev",
    });
    await addAll(store, set);
    const link = `${store.root}/result`;
    const json = JSON.parse(
      await store.ok(["build", "--no-sandbox", "--json", "-o", link, m.path]),
    );
    assertEquals(json.length, 1);
    assertEquals(json[0].drvPath, m.path);
    assertEquals(json[0].status, "Built");
    assertEquals(json[0].outputs, m.outputs);
    assertEquals(json[0].timesBuilt, 1);
    assertEquals(Deno.readLinkSync(link), m.outputs.out);
    assertEquals(Deno.readLinkSync(`${link}-dev`), m.outputs.dev);
  }));

Deno.test("kiln build - adds derivation documents from stdin, then builds the top ones", () =>
  withStore(async (store, set) => {
    const a = set.add({ name: "a", script: "echo a > $out" });
    const b = set.add({ name: "b", inputs: [a], script: "echo b > $out" });
    const out = await store.ok(["build", "--no-sandbox", "-"], set.document());
    assertEquals(out, `${b.outputs.out}\n`);
    assertEquals(
      await store.ok(["build", "--no-sandbox", "-"], `${a.path}\n`),
      `${a.outputs.out}\n`,
    );
  }));

/** `a`, and `b` whose builder succeeds but whose output refers to `a`, which it may not. */
function addRejected(set: DrvSet): { a: TestDrv; b: TestDrv } {
  const a = set.add({ name: "a", script: "echo a > $out" });
  const b = set.add({
    name: "b",
    inputs: [a],
    env: { allowedReferences: "" },
    script: `echo ${a.outputs.out} > $out`,
  });
  return { a, b };
}

Deno.test("kiln build rejects outputs that break allowedReferences, or that are missing", () =>
  withStore(async (store, set) => {
    const { a, b } = addRejected(set);
    const c = set.add({ name: "c", outputs: ["out", "dev"], script: "echo > $out" });
    await addAll(store, set);
    const r = await store.run(["build", "--no-sandbox", b.path]);
    assertEquals(r.code, 1, r.stderr);
    assertStringIncludes(
      r.stderr,
      `error: output '${b.outputs.out}' is not allowed to refer to the following paths:\n  ${a.outputs.out}\n`,
    );
    const m = await store.run(["build", "--no-sandbox", c.path]);
    assertEquals(m.code, 1, m.stderr);
    assertStringIncludes(
      m.stderr,
      `builder for '${c.path}' failed to produce output path for output 'dev' at '${c.outputs.dev}'`,
    );
    // Nothing of a rejected build stays behind.
    for (const p of [b.outputs.out, c.outputs.out]) {
      assertEquals((await store.run(["store", "path-info", p])).code, 1);
    }
  }));

Deno.test("kiln build fails a dependent started early when its dependency's output is rejected", () =>
  withStore(async (store, set) => {
    // b's builder succeeds, so c starts as soon as b's output is in place; b's checks wait until
    // c's builder runs, then fail.
    const { b } = addRejected(set);
    const c = set.add({
      name: "c",
      inputs: [b],
      script: "echo started; echo c > $out; exec /bin/sleep 30",
    });
    await addAll(store, set);
    const cLog = buildLogPath(buildLogDir(store.env.KILN_STATE_DIR), c.path);
    for (const flags of [[], ["--keep-going"]]) {
      if (pathExists(cLog)) Deno.removeSync(cLog); // the last round's
      const r = await store.run(["build", "--no-sandbox", "-L", ...flags, c.path, "--json"]);
      assertEquals(r.code, 1, r.stderr);
      assertStringIncludes(r.stderr, `error: output '${b.outputs.out}' is not allowed to refer`);
      // c's builder ran (a killed builder keeps its log, empty if it was killed before its echo),
      // but c is not announced: as far as the output tells, it never started.
      assert(pathExists(cLog), "c did not start early");
      assert(["", "started\n"].includes(await store.ok(["log", c.path])), "c's log");
      assert(!r.stderr.includes(`building '${c.path}'`), r.stderr);
      assert(!r.stderr.includes("c> started"), "c's lines stay in its log");
      const results = JSON.parse(r.stdout);
      assertEquals(results[0].status, "DependencyFailed", r.stdout);
      assertEquals(results[0].errorMsg, `1 dependencies of derivation '${c.path}' failed to build`);
      // The builder of c was stopped and its output removed, not registered.
      assertEquals((await store.run(["store", "path-info", c.outputs.out])).code, 1);
      assert(!pathExists(store.physical(c.outputs.out)), "c's output is left behind");
    }
  }));

Deno.test("kiln build leaves no build dir behind, prepared for a dependent or not", () =>
  withStore(async (store, set) => {
    // b is prepared (its dir taken) while a runs; a fails, so b never starts.
    const a = set.add({ name: "a", script: "echo a > $out; exit 1" });
    const b = set.add({ name: "b", inputs: [a], script: "echo b > $out" });
    const x = set.add({ name: "x", script: "echo x > $out" });
    const y = set.add({ name: "y", inputs: [x], script: "echo y > $out" });
    await addAll(store, set);
    const tmp = Deno.makeTempDirSync();
    store.env.TMPDIR = tmp;
    try {
      const failed = await store.run(["build", "--no-sandbox", b.path]);
      assertEquals(failed.code, 100, failed.stderr);
      assertEquals(Deno.readDirSync(tmp).toArray(), []);
      assertEquals(await store.ok(["build", "--no-sandbox", y.path]), `${y.outputs.out}\n`);
      assertEquals(Deno.readDirSync(tmp).toArray(), []);
    } finally {
      Deno.removeSync(tmp, { recursive: true });
    }
  }));

Deno.test("kiln build -K keeps the build directory of a failed build", () =>
  withStore(async (store, set) => {
    const bad = set.add({ name: "bad", script: "echo kept > file; exit 1" });
    await addAll(store, set);
    const r = await store.run(["build", "--no-sandbox", "-K", bad.path]);
    assertEquals(r.code, 100);
    const dir = r.stderr.match(/note: keeping build directory '([^']+)'/)?.[1];
    assert(dir !== undefined, r.stderr);
    try {
      assertEquals(Deno.readTextFileSync(`${dir}/file`), "kept\n");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }));

Deno.test("kiln build -L prints the builder's lines prefixed with its name", () =>
  withStore(async (store, set) => {
    const a = set.add({ name: "loud", script: "echo line1; echo line2 >&2; echo > $out" });
    // b starts early (as soon as a's output is in place), but is announced only once a is
    // registered: its lines come after its announcement all the same.
    const b = set.add({ name: "next", inputs: [a], script: "echo right away; echo > $out" });
    await addAll(store, set);
    const r = await store.run(["build", "--no-sandbox", "-L", b.path]);
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stderr, "loud> line1\nloud> line2\n");
    assertStringIncludes(r.stderr, `building '${b.path}'...\nnext> right away\n`);
  }));

for (const backend of ["bwrap", "namespaces"] as const) {
  Deno.test({
    name: `kiln build --sandbox (${backend}): a build sees nothing an earlier one left or changed`,
    ignore: !works.get(backend),
    fn: () =>
      withStore(async (store, set) => {
        useBackend(store, backend);
        // Sandbox stores are handed on from build to build (as root): what a builder litters or
        // replaces there must be gone for the next one, which must see its inputs as they are.
        const s = set.add({ name: "s", script: "/bin/ln -s /nowhere $out" });
        const a = set.add({
          name: "a",
          inputs: [s],
          script: `echo litter > $NIX_STORE/litter; /bin/rm -f ${s.outputs.out}; ` +
            `echo fake > ${s.outputs.out}; echo a > $out`,
        });
        const b = set.add({
          name: "b",
          inputs: [a, s],
          script: `test ! -e $NIX_STORE/litter || exit 3; test -L ${s.outputs.out} || exit 4; ` +
            `echo b > $out`,
        });
        await addAll(store, set);
        const r = await store.run(["build", "--sandbox", "-j1", b.path]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(Deno.readLinkSync(store.physical(s.outputs.out)), "/nowhere");
      }),
  });

  Deno.test({
    name: `kiln build --sandbox (${backend}) shows the store paths sandbox-paths names, no inputs`,
    ignore: !works.get(backend),
    fn: () =>
      withStore(async (store, set) => {
        useBackend(store, backend);
        // As Nix: their closures are bound in the sandbox (a store path that is not valid is
        // skipped), but the output scan looks only for the inputs' and outputs' hashes.
        const tool = set.add({ name: "tool", script: "echo tool > $out" });
        const missing = `${store.storeDir}/${"a".repeat(32)}-missing`;
        const user = set.add({
          name: "user",
          script: `echo ${tool.outputs.out} > $out; /bin/cat ${tool.outputs.out} >> $out`,
        });
        await addAll(store, set);
        await store.ok(["build", "--sandbox", tool.path]);
        const r = await store.run([
          "build",
          "--sandbox",
          "--sandbox-paths",
          `/bin /usr /lib /lib64? ${tool.outputs.out}=${
            store.physical(tool.outputs.out)
          } ${missing}?`,
          user.path,
          "--json",
        ]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(
          Deno.readTextFileSync(store.physical(user.outputs.out)),
          `${tool.outputs.out}\ntool\n`,
        );
        assertEquals((await pathInfo(store, user.outputs.out)).references, []);
      }),
  });
}

Deno.test("kiln build without the sandbox and namespaces needs store root '/'", async () => {
  const store = new KilnStore("/nix/store");
  try {
    const a = new DrvSet(store.storeDir).add({ name: "a", script: "echo > $out" });
    await store.ok(["derivation", "add"], printDerivation(a.drv));
    // sandbox-backend = bwrap: no user namespaces for unsandboxed builders either.
    const args = ["--option", "sandbox-backend", "bwrap"];
    const r = await store.run(["build", "--no-sandbox", ...args, a.path]);
    assertEquals(r.code, 100);
    assertStringIncludes(
      r.stderr,
      `without the sandbox: the store lives under '${store.env.KILN_STORE_ROOT}'`,
    );
  } finally {
    store.cleanup();
  }
});

Deno.test({
  name: "kiln build without the sandbox shows the store at its logical place through namespaces",
  ignore: !works.get("namespaces"),
  fn: async () => {
    const store = new KilnStore("/nix/store");
    try {
      const set = new DrvSet(store.storeDir);
      const a = set.add({ name: "a", script: "echo a > $out" });
      const script = `read x <${a.outputs.out}; echo $x >$out; ` +
        'while read k v rest; do [ "$k" = Uid: ] && echo $v >>$out; done </proc/self/status; true';
      const b = set.add({ name: "b", script, inputs: [a] });
      await addAll(store, set);
      const r = await store.run(["build", "--no-sandbox", b.path]);
      assertEquals(r.code, 0, r.stderr);
      // The builder ran as this user, read its input at its store path, wrote the real store.
      assertEquals(Deno.readTextFileSync(store.physical(b.outputs.out)), `a\n${Deno.uid()}\n`);
    } finally {
      store.cleanup();
    }
  },
});
