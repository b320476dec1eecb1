import { assert, assertEquals, assertStringIncludes, assertThrows } from "../_assert.ts";
import { splitCommandLine, UsageError } from "../../lib/cli/args.ts";
import { addAll, withStore } from "../e2e/_drv.ts";
import type { KilnStore } from "../_kiln.ts";

Deno.test("splitCommandLine() moves global options before the verb after its arguments", () => {
  assertEquals(
    splitCommandLine(["--store-dir", "/s", "--option", "max-jobs", "2", "build", "x"]),
    {
      verb: "build",
      args: ["x", "--store-dir", "/s", "--option", "max-jobs", "2"],
      help: false,
      version: false,
    },
  );
  assertEquals(splitCommandLine(["--state-dir=/t", "store", "add", "--", "-f"]), {
    verb: "store",
    args: ["add", "--state-dir=/t", "--", "-f"],
    help: false,
    version: false,
  });
});

Deno.test("splitCommandLine() finds --help and --version on either side, not after --", () => {
  assertEquals(splitCommandLine(["-h"]).help, true);
  assertEquals(splitCommandLine(["--help", "build"]), {
    verb: "build",
    args: [],
    help: true,
    version: false,
  });
  assertEquals(splitCommandLine(["build", "x", "--version"]).version, true);
  assertEquals(splitCommandLine(["--version"]).version, true);
  assertEquals(splitCommandLine(["nar", "cat", "--", "--help"]).help, false);
});

Deno.test("splitCommandLine() rejects unknown flags and missing values before the verb", () => {
  assertThrows(() => splitCommandLine(["--frob", "build"]), UsageError, "'--frob'");
  assertThrows(() => splitCommandLine(["-j", "2", "build"]), UsageError, "'-j'");
  assertThrows(() => splitCommandLine(["--store-dir"]), UsageError, "--store-dir needs a value");
  assertThrows(
    () => splitCommandLine(["--option", "max-jobs"]),
    UsageError,
    "--option needs a NAME and a VALUE",
  );
});

/** The store's location as flags, its KILN_* variables taken out of its environment. */
function locationFlags(store: KilnStore): string[] {
  const flags = [
    "--store-dir",
    store.env.KILN_STORE_DIR,
    `--store-root=${store.env.KILN_STORE_ROOT}`,
    "--state-dir",
    store.env.KILN_STATE_DIR,
  ];
  delete store.env.KILN_STORE_DIR;
  delete store.env.KILN_STORE_ROOT;
  delete store.env.KILN_STATE_DIR;
  return flags;
}

Deno.test("kiln takes global options before the verb as after it, for every command", () =>
  withStore(async (store, set) => {
    const a = set.add({ name: "a", script: "echo a > $out" });
    const b = set.add({ name: "b", script: "echo b > $out" });
    await addAll(store, set);
    const flags = locationFlags(store);
    // max-jobs 0 builds nothing locally: the option reached the build, before the verb or after.
    for (const args of [["build", a.path, ...flags], [...flags, "build", a.path]]) {
      const none = await store.run(["--option", "max-jobs", "0", ...args]);
      assertEquals(none.code, 1, none.stderr);
      assertStringIncludes(none.stderr, "max-jobs");
    }
    const built = await store.ok([...flags, "--option", "max-jobs", "2", "build", a.path]);
    assertEquals(built, `${a.outputs.out}\n`);
    assertEquals(
      await store.ok(["build", ...flags, "--option", "max-jobs", "2", b.path]),
      `${b.outputs.out}\n`,
    );
    // A verb with subcommands, and one that reads no store.
    const before = await store.ok([...flags, "store", "path-info", a.outputs.out]);
    assertEquals(before, await store.ok(["store", "path-info", a.outputs.out, ...flags]));
    assertEquals(before, await store.ok(["store", ...flags, "path-info", a.outputs.out]));
    const none = await store.run([...flags, "store"]);
    assertStringIncludes(none.stderr, "kiln store needs a subcommand");
    assertStringIncludes(before, a.outputs.out);
    const hash = await store.ok(["hash", "convert", "--type", "sha256", "0".repeat(64)]);
    assertEquals(
      await store.ok([...flags, "hash", "convert", "--type", "sha256", "0".repeat(64)]),
      hash,
    );
  }));

Deno.test("kiln --help and --version work before and after the verb; unknown flags fail", () =>
  withStore(async (store) => {
    const top = await store.ok(["--help"]);
    assertStringIncludes(top, "Global options");
    const usage = await store.ok(["build", "--help"]);
    assertStringIncludes(usage, "Usage: kiln build");
    assertEquals(await store.ok(["--store-dir", "/x", "--help", "build"]), usage);
    assertEquals(await store.ok(["--version"]), "kiln 0.1.0\n");
    assertEquals(await store.ok(["store", "add", "--version"]), "kiln 0.1.0\n");
    const flags = locationFlags(store);
    assertEquals(await store.ok([...flags, "--version"]), "kiln 0.1.0\n");
    for (const args of [["--frob", "build", "x"], ["build", "--frob", "x"]]) {
      const r = await store.run(args);
      assertEquals(r.code, 1);
      assertStringIncludes(r.stderr, "'--frob'");
      assert(r.stderr.startsWith("error: "), r.stderr);
    }
    const r = await store.run(["--frob", "build"]);
    assertEquals(r.stderr.split("\n").length, 2, r.stderr); // one line and its newline
  }));
