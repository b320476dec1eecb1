import { assert, assertEquals, assertMatch } from "../_assert.ts";
import { join } from "node:path";
import { KilnStore } from "../_kiln.ts";
import { readUntil } from "../_process.ts";
import { addAll, DrvSet, makeBuildStore } from "../e2e/_drv.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Starts `kiln serve ARGS` in `kiln`'s store; resolves once it prints its address. */
async function startServe(kiln: KilnStore, args: string[], env: Record<string, string> = {}) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", MAIN, "serve", ...args],
    env: { ...kiln.env, ...env },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let stderr = await readUntil(reader, "\n");
  const rest = (async () => {
    for (let r = await reader.read(); !r.done; r = await reader.read()) stderr += r.value;
    return stderr;
  })();
  const url = /^listening on (http:\/\/\S+)$/m.exec(stderr)?.[1];
  return { child, url, firstLines: stderr, stderr: rest };
}

Deno.test("kiln serve serves the store, signed, and stops on SIGTERM and SIGINT", async () => {
  const kiln = new KilnStore();
  try {
    const file = join(kiln.root, "f");
    Deno.writeTextFileSync(file, "served\n");
    const path = (await kiln.ok(["store", "add", file])).trim();
    const sk = join(kiln.root, "sk");
    const pk = join(kiln.root, "pk");
    await kiln.ok(["key", "generate", "serve-1", "--secret-file", sk, "--public-file", pk]);
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      const server = await startServe(kiln, ["--listen", "127.0.0.1:0"], {
        KILN_CONFIG: `secret-key-files = ${sk}\n`,
      });
      try {
        assert(server.url, server.firstLines);
        const info = await (await fetch(`${server.url}/nix-cache-info`)).text();
        assertMatch(info, /^StoreDir: \/nix\/store\nWantMassQuery: 1\nPriority: 30\n$/);
        const hashPart = path.slice("/nix/store/".length, "/nix/store/".length + 32);
        const narinfo = await (await fetch(`${server.url}/${hashPart}.narinfo`)).text();
        assertMatch(narinfo, new RegExp(`^StorePath: ${path}\n`));
        assertMatch(narinfo, /\nSig: serve-1:/);
        const url = /\nURL: (\S+)\n/.exec(narinfo)![1];
        const nar = await fetch(`${server.url}/${url}`);
        assertEquals(nar.status, 200);
        assertEquals(
          (await nar.arrayBuffer()).byteLength,
          Number(/NarSize: (\d+)/.exec(narinfo)![1]),
        );
        const missing = await fetch(`${server.url}/${"0".repeat(32)}.narinfo`);
        await missing.body?.cancel();
        assertEquals(missing.status, 404);
      } finally {
        server.child.kill(signal);
        assertEquals((await server.child.status).code, 0);
        await server.stderr;
      }
    }
  } finally {
    kiln.cleanup();
  }
});

Deno.test("kiln serve refuses a bad --listen and arguments", async () => {
  const kiln = new KilnStore();
  try {
    const bad = await kiln.run(["serve", "--listen", "localhost"]);
    assertEquals(bad.code, 1);
    assertMatch(bad.stderr, /--listen 'localhost' is not ADDR:PORT/);
    const extra = await kiln.run(["serve", "x"]);
    assertMatch(extra.stderr, /takes no arguments/);
  } finally {
    kiln.cleanup();
  }
});

Deno.test("kiln serve serves the build log that kiln log prints", async () => {
  const kiln = makeBuildStore();
  try {
    const set = new DrvSet(kiln.storeDir);
    const drv = set.add({ name: "logged", script: "echo line one; echo line two >&2; : > $out" });
    await addAll(kiln, set);
    await kiln.ok(["build", "--no-sandbox", drv.path]);
    const server = await startServe(kiln, ["--listen", "127.0.0.1:0"]);
    try {
      assert(server.url, server.firstLines);
      const base = drv.path.slice(drv.path.lastIndexOf("/") + 1);
      const log = await fetch(`${server.url}/log/${base}`);
      assertEquals(log.status, 200);
      assertEquals(await log.text(), "line one\nline two\n");
      assertEquals(await kiln.ok(["log", drv.path]), "line one\nline two\n");
    } finally {
      server.child.kill("SIGTERM");
      await server.child.status;
      await server.stderr;
    }
  } finally {
    kiln.cleanup();
  }
});
