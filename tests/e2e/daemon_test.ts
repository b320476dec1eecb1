import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "../_assert.ts";
import { nixAvailable } from "../_nix.ts";
import { lockWaiters, makeFifo, openFifo, readUntil, waitFor } from "../_process.ts";
import { type DaemonFixture, instantiate, withDaemon } from "./_daemon.ts";

function daemonTest(
  name: string,
  fn: (daemon: DaemonFixture) => Promise<void>,
  config?: string,
): void {
  Deno.test({ name, ignore: !nixAvailable, fn: () => withDaemon(fn, config) });
}

/** Two derivations, b copying a's output: their builders echo a line each (shell builtins only). */
const TWO = `let
  a = derivation { name = "a"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "echo building-a; echo a-contents > $out" ]; };
in derivation { name = "b"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "echo building-b; read line < \${a}; echo \\"$line \${a}\\" > $out" ]; }`;

daemonTest("kiln daemon: nix-store --add, queries and --dump through the socket", async (d) => {
  const file = join(d.store.root, "hello.txt");
  Deno.writeTextFileSync(file, "hello\n");
  const path = (await d.nixOk("nix-store", ["--add", file])).trim();
  assert(path.startsWith(`${d.store.storeDir}/`), path);
  assertEquals(Deno.readTextFileSync(path), "hello\n");
  // The daemon's store agrees: kiln itself sees the path, with the metadata Nix was sent.
  const info = JSON.parse(await d.nixOk("nix", ["path-info", "--json", path]))[0];
  const kiln = JSON.parse(await d.store.ok(["store", "path-info", "--json", path]))[path];
  assertEquals(info.narHash, kiln.narHash);
  assertEquals(info.narSize, kiln.narSize);
  assertEquals(info.ca, kiln.ca);
  assertEquals(await d.nixOk("nix-store", ["-q", "--references", path]), "");
  const dump = await d.nix("nix-store", ["--dump", path]);
  assertEquals(dump.code, 0, dump.stderr);
  assertEquals(dump.bytes, (await d.store.run(["nar", "dump", path])).bytes);
  const ping = await d.nix("nix", ["store", "ping"]); // Nix 2.8 prints it on stderr
  assertEquals(ping.code, 0, ping.stderr);
  assertStringIncludes(ping.stderr, `Store URL: unix://${d.socket}\nVersion: 2.8.0 (kiln`);
  // Several clients at once.
  const many = await Promise.all([1, 2, 3].map(() => d.nixOk("nix-store", ["-q", "--hash", path])));
  assertEquals(new Set(many).size, 1);
});

daemonTest(
  "kiln daemon: nix-instantiate and nix-store --realise build two derivations",
  async (d) => {
    const expr = join(d.store.root, "two.nix");
    Deno.writeTextFileSync(expr, TWO);
    const drvB = (await d.nixOk("nix-instantiate", [expr])).trim();
    const [drvA] = (await d.nixOk("nix-store", ["-q", "--references", drvB])).trim().split("\n")
      .filter((p) => p.endsWith(".drv"));
    assert(drvA?.endsWith("-a.drv"), drvA);
    const realise = await d.nix("nix-store", ["--realise", drvB]);
    assertEquals(realise.code, 0, realise.stderr);
    const outB = realise.stdout.trim();
    // The builders' lines reach the client, under Nix's 'building' lines.
    assertStringIncludes(realise.stderr, `building '${drvA}'...\nbuilding-a\n`);
    assertStringIncludes(realise.stderr, `building '${drvB}'...\nbuilding-b\n`);
    // The outputs are the ones the derivations name, and kiln builds them as it does directly.
    assertEquals((await d.store.ok(["build", drvB])).trim(), outB);
    const outA = (await d.store.ok(["build", drvA])).trim();
    assertEquals(Deno.readTextFileSync(outB), `a-contents ${outA}\n`);
    assertEquals((await d.nixOk("nix-store", ["-q", "--references", outB])).trim(), outA);
    assertEquals((await d.nixOk("nix-store", ["-q", "--referrers", outA])).trim(), outB);
    assertEquals((await d.nixOk("nix-store", ["-q", "--deriver", outB])).trim(), drvB);
    // nix build asks BuildPathsWithResults, and reads the outputs from the results.
    const built = JSON.parse(await d.nixOk("nix", ["build", "--no-link", "--json", "-f", expr]));
    assertEquals(built, [{ drvPath: drvB, outputs: { out: outB } }]);
  },
);

daemonTest("kiln daemon: a failing build's log and error reach nix-build", async (d) => {
  const drv = await instantiate(d, "bad", "echo failing-now; exit 3");
  const r = await d.nix("nix-build", ["--no-out-link", drv]);
  // As with Nix 2.8's own daemon: the error crosses the socket without its status, so 1, and
  // the one failed build's error is the operation's.
  assertEquals(r.code, 1, r.stderr);
  assertStringIncludes(r.stderr, `building '${drv}'...\nfailing-now\n`);
  assertStringIncludes(r.stderr, `error: builder for '${drv}' failed with exit code 3;\n`);
  assertStringIncludes(r.stderr, "> failing-now\n");
  assert(!r.stderr.includes("build of"), r.stderr);
});

daemonTest("kiln daemon: settings the client overrides apply to its builds", async (d) => {
  const drv = await instantiate(d, "sleepy", "echo sleeping; exec /bin/sleep 60");
  const r = await d.nix("nix-store", ["--realise", "--option", "timeout", "1", drv]);
  assertEquals(r.code, 1, r.stderr);
  assertStringIncludes(
    r.stderr,
    `error: building of '${drv}!*' from .drv file timed out after 1 seconds`,
  );
});

daemonTest("kiln daemon: a client killed during its build cancels the build", async (d) => {
  const dir = join(d.store.root, "host");
  Deno.mkdirSync(dir);
  // The builder and its child hold `alive` open for writing: its EOF says both are gone.
  const alive = join(dir, "alive");
  makeFifo(alive);
  const drv = await instantiate(d, "slow", `exec 3>${alive}; /bin/sleep 3600 & echo started; wait`);
  const client = new Deno.Command("nix-store", {
    args: ["--realise", drv],
    env: d.env,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const builder = (await openFifo(alive, "read", client.status)).readable.getReader();
  const stderr = client.stderr.pipeThrough(new TextDecoderStream()).getReader();
  assertStringIncludes(await readUntil(stderr, "started\n"), "started\n");
  client.kill("SIGKILL");
  await client.status;
  await stderr.cancel();
  // EOF once every process holding the pipe has exited (the sleep would hold it an hour).
  const limit = AbortSignal.timeout(30_000);
  const outlived = new Promise((resolve) => limit.onabort = resolve);
  const end = await Promise.race([builder.read(), outlived]);
  assertEquals(end, { value: undefined, done: true }, "the builder is gone");
  // The daemon goes on serving, and the derivation was not registered as built.
  const outPath = (await d.nixOk("nix-store", ["-q", "--outputs", drv])).trim();
  assertEquals(
    (await d.nixOk("nix-store", ["--check-validity", "--print-invalid", outPath])).trim(),
    outPath,
  );
}, "sandbox = false\n");

daemonTest(
  "kiln daemon: two clients asking for one derivation at once get one build",
  async (d) => {
    const dir = join(d.store.root, "host");
    Deno.mkdirSync(dir);
    const counter = join(dir, "counter");
    const release = join(dir, "release");
    makeFifo(release);
    const drv = await instantiate(
      d,
      "shared",
      `echo run >> ${counter}; read line < ${release}; echo shared > $out`,
    );
    const clients = [1, 2].map(() => d.nix("nix-store", ["--realise", drv]));
    // One builder runs (it has counted itself) and the other client's build waits for its lock.
    const locks = join(d.store.env.KILN_STATE_DIR, "locks");
    await waitFor("the second build to wait", () => {
      const counted = readOrEmpty(counter);
      return counted !== "" && lockWaiters(locks) === 1;
    });
    const writer = await openFifo(release, "write", Promise.race(clients));
    await writer.write(new TextEncoder().encode("go\n"));
    writer.close();
    const [a, b] = await Promise.all(clients);
    assertEquals(a.code, 0, a.stderr);
    assertEquals(b.code, 0, b.stderr);
    assertEquals(a.stdout, b.stdout);
    assertEquals(Deno.readTextFileSync(a.stdout.trim()), "shared\n");
    assertEquals(Deno.readTextFileSync(counter), "run\n");
  },
  "sandbox = false\n",
);

function readOrEmpty(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}
