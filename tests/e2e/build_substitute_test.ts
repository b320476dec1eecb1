import { join } from "node:path";
import { probeSandbox } from "../../lib/sandbox/mod.ts";
import { assert, assertEquals, assertStringIncludes } from "../_assert.ts";
import { KilnStore } from "../_kiln.ts";
import { addAll, DrvSet, HOST_SANDBOX_PATHS, makeBuildStore, type TestDrv } from "./_drv.ts";

const sandboxWorks = (await probeSandbox()).ok;

interface Fixture {
  /** Built `top` (depending on `base`) and copied its closure into a signed cache. */
  builder: KilnStore;
  /** Same logical store dir, elsewhere on disk, with the derivations added and nothing built. */
  user: KilnStore;
  set: DrvSet;
  base: TestDrv;
  top: TestDrv;
  cache: string;
  substituteFlags: string[];
}

async function withCache(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const builder = makeBuildStore();
  const user = new KilnStore(builder.storeDir);
  user.env.KILN_CONFIG = `sandbox-paths = ${HOST_SANDBOX_PATHS}\n`;
  try {
    const set = new DrvSet(builder.storeDir);
    const base = set.add({ name: "base", script: "echo base > $out" });
    const top = set.add({ name: "top", inputs: [base], script: `echo ${base.outputs.out} > $out` });
    await addAll(builder, set);
    await builder.ok(["build", "--no-sandbox", top.path]);
    const sk = join(builder.root, "sk");
    const pk = join(builder.root, "pk");
    await builder.ok(["key", "generate", "test-1", "--secret-file", sk, "--public-file", pk]);
    const cache = join(builder.root, "cache");
    await builder.ok(["copy", "--to", `file://${cache}?secret-key=${sk}`, top.outputs.out]);
    await addAll(user, set);
    const substituteFlags = [
      "--substituters",
      `file://${cache}`,
      "--option",
      "trusted-public-keys",
      Deno.readTextFileSync(pk),
    ];
    await fn({ builder, user, set, base, top, cache, substituteFlags });
  } finally {
    builder.cleanup();
    user.cleanup();
  }
}

Deno.test("kiln build substitutes outputs from a cache instead of building them", () =>
  withCache(async ({ user, top, base, substituteFlags }) => {
    const r = await user.run(["build", "--max-jobs", "0", ...substituteFlags, top.path]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, `${top.outputs.out}\n`);
    assertStringIncludes(r.stderr, `copying path '${top.outputs.out}'`);
    assertStringIncludes(r.stderr, `copying path '${base.outputs.out}'`);
    assert(!r.stderr.includes("building '"), r.stderr);
    const info = JSON.parse(await user.ok(["store", "path-info", "--json", top.outputs.out]));
    assertEquals(info[top.outputs.out].ultimate, false);
    assertEquals(info[top.outputs.out].references, [base.outputs.out]);
    assert(info[top.outputs.out].signatures[0].startsWith("test-1:"));
    assertEquals(Deno.readTextFileSync(user.physical(top.outputs.out)), `${base.outputs.out}\n`);
  }));

Deno.test("kiln build --max-jobs 0 fails what no cache has, and --offline skips caches", () =>
  withCache(async ({ user, set, top, substituteFlags }) => {
    const other = set.add({ name: "other", script: "echo other > $out" });
    await addAll(user, set);
    const missing = await user.run(["build", "-j", "0", ...substituteFlags, other.path]);
    assertEquals(missing.code, 1, missing.stderr);
    assertStringIncludes(missing.stderr, "Unable to start any build");
    const offline = await user.run(["build", "-j", "0", "--offline", ...substituteFlags, top.path]);
    assertEquals(offline.code, 1, offline.stderr);
    assert(!offline.stderr.includes("copying path"), offline.stderr);
  }));

Deno.test({
  name: "kiln build rejects a corrupt substitute, and --fallback builds instead",
  ignore: !sandboxWorks,
  fn: () =>
    withCache(async ({ user, top, cache, substituteFlags }) => {
      for (const entry of Deno.readDirSync(join(cache, "nar"))) {
        Deno.writeFileSync(join(cache, "nar", entry.name), new TextEncoder().encode("garbage"));
      }
      const strict = await user.run(["build", ...substituteFlags, top.path]);
      assertEquals(strict.code, 1, strict.stderr);
      assertStringIncludes(strict.stderr, "use --fallback");
      assertEquals(await user.run(["store", "path-info", top.outputs.out]).then((r) => r.code), 1);
      const fallback = await user.run(["build", "--fallback", ...substituteFlags, top.path]);
      assertEquals(fallback.code, 0, fallback.stderr);
      assertStringIncludes(fallback.stderr, `building '${top.path}'`);
    }),
});

Deno.test("kiln build: Ctrl-C during substitution cancels it, and nothing is registered", () =>
  withCache(async ({ user, top, cache, substituteFlags }) => {
    // The cache over HTTP: narinfos come at once, a NAR's body never ends.
    const narRequested = Promise.withResolvers<void>();
    const bodies = new Set<ReadableStreamDefaultController<Uint8Array>>();
    await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
      const path = new URL(req.url).pathname;
      if (path.startsWith("/nar/")) {
        narRequested.resolve();
        let held: ReadableStreamDefaultController<Uint8Array>;
        return new Response(
          new ReadableStream({
            start: (body) => void bodies.add(held = body),
            cancel: () => void bodies.delete(held), // kiln hung up
          }),
        );
      }
      try {
        return new Response(Deno.readFileSync(join(cache, path)));
      } catch {
        return new Response("", { status: 404 });
      }
    });
    const url = `http://127.0.0.1:${server.addr.port}`;
    const flags = substituteFlags.map((flag) => flag === `file://${cache}` ? url : flag);
    const child = user.spawn(["build", "--max-jobs", "0", ...flags, top.path]);
    await narRequested.promise;
    child.kill("SIGINT");
    const out = await child.output();
    for (const body of bodies) body.close(); // else the server waits for them
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 1, stderr);
    assertStringIncludes(stderr, "error: interrupted by the user");
    assert(!stderr.includes("use --fallback"), stderr);
    assertEquals((await user.run(["store", "path-info", top.outputs.out])).code, 1);
  }));
