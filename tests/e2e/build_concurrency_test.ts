import { probeSandbox, type SandboxBackend } from "../../lib/sandbox/mod.ts";
import { assert, assertEquals, assertStringIncludes } from "../_assert.ts";
import { lockWaiters, makeFifo, openFifo, readUntil, waitFor } from "../_process.ts";
import { addAll, HOST_SANDBOX_PATHS, type TestDrv, withStore } from "./_drv.ts";

const works = new Map<SandboxBackend, boolean>();
for (const backend of ["bwrap", "namespaces"] as const) {
  works.set(backend, (await probeSandbox({ backend })).ok);
}
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Processes whose command line mentions `marker`, and their descendants: pid -> name. */
function processesOf(marker: string): Map<number, string> {
  const procs: { pid: number; ppid: number; comm: string; cmdline: string }[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      procs.push({ pid: Number(entry.name), ppid, comm, cmdline });
    } catch {
      // gone meanwhile
    }
  }
  const found = new Map<number, string>();
  for (const p of procs) if (p.cmdline.includes(marker)) found.set(p.pid, p.comm);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of procs) {
      if (!found.has(p.pid) && found.has(p.ppid)) {
        found.set(p.pid, p.comm);
        grew = true;
      }
    }
  }
  return found;
}

Deno.test("two kiln processes building overlapping graphs build each derivation once", () =>
  withStore(async (store, set) => {
    const log = `${store.root}/builds.log`;
    // s1's builder waits for a line on `gate`: the test sends it once the other kiln process
    // waits for s1's lock, so that both overlap there on any machine.
    const gate = `${store.root}/gate`;
    makeFifo(gate);
    const step = (name: string, inputs = [] as TestDrv[], wait = "") =>
      set.add({ name, inputs, script: `echo ${name} >> ${log}; ${wait}echo ${name} > $out` });
    const s1 = step("s1", [], `read x < ${gate}; `);
    const s2 = step("s2", [s1]);
    const x = step("x", [s2, step("x1")]);
    const y = step("y", [s2, step("y1")]);
    await addAll(store, set);
    const runs = Promise.all([
      store.run(["build", "--no-sandbox", x.path]),
      store.run(["build", "--no-sandbox", y.path]),
    ]);
    const opened = await openFifo(gate, "write", runs);
    await waitFor("one kiln to wait for the other's lock", () => {
      return lockWaiters(`${store.env.KILN_STATE_DIR}/locks`) > 0;
    });
    await opened.write(new TextEncoder().encode("go\n"));
    opened.close();
    const [rx, ry] = await runs;
    assertEquals([rx.code, ry.code], [0, 0], rx.stderr + ry.stderr);
    assertEquals(rx.stdout, `${x.outputs.out}\n`);
    assertEquals(ry.stdout, `${y.outputs.out}\n`);
    const built = Deno.readTextFileSync(log).trim().split("\n").sort();
    assertEquals(built, ["s1", "s2", "x", "x1", "y", "y1"]);
  }));

for (
  const [signal, sandbox] of [
    ["SIGINT", false],
    ["SIGTERM", false],
    ["SIGKILL", false],
    ["SIGKILL", "bwrap"],
    ["SIGKILL", "namespaces"],
  ] as const
) {
  Deno.test({
    name: `kiln build killed by ${signal}${
      sandbox ? ` (sandboxed, ${sandbox})` : ""
    } leaves no builder, no valid output, and rebuilds cleanly`,
    ignore: sandbox && !works.get(sandbox),
    fn: () =>
      withStore(async (store, set) => {
        const dir = `${store.root}/host`;
        Deno.mkdirSync(dir, { mode: 0o777 });
        Deno.chmodSync(dir, 0o777);
        // Unsandboxed the builder sees `dir`; sandboxed it is mapped in as a sandbox path.
        const flag = `${dir}/finish`;
        // The builder and its child hold `alive` open for writing: its EOF says both are gone.
        const alive = `${dir}/alive`;
        makeFifo(alive);
        const a = set.add({
          name: "slow",
          script: `if [ -e ${flag} ]; then echo done > $out; exit 0; fi; ` +
            `echo partial > $out; exec 3>${alive}; /bin/sleep 3600 & echo started; wait`,
        });
        await addAll(store, set);
        const mode = sandbox
          ? ["--sandbox", "--sandbox-paths", `${HOST_SANDBOX_PATHS} ${dir}`]
          : ["--no-sandbox"];
        if (sandbox) mode.push("--option", "sandbox-backend", sandbox);
        const child = new Deno.Command(Deno.execPath(), {
          args: ["run", "--allow-all", "--quiet", MAIN, "build", "-L", ...mode, a.path],
          env: store.env,
          stdout: "null",
          stderr: "piped",
        }).spawn();
        const builder = (await openFifo(alive, "read", child.status)).readable.getReader();
        // kiln shows the builder's line (-L) once it supervises the builder, which it has listed
        // for its watchdog by then: the kill comes after that.
        const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
        let shown = await readUntil(stderr, "started\n");
        assertStringIncludes(shown, "started\n");
        child.kill(signal);
        for (let r = await stderr.read(); !r.done; r = await stderr.read()) shown += r.value;
        const { code } = await child.status;
        assert(code !== 0);
        if (signal !== "SIGKILL") assertEquals(code, 1, shown);
        // EOF once every process holding the pipe has exited (the sleep would hold it an hour).
        const limit = AbortSignal.timeout(30_000);
        const outlived = new Promise((resolve) => limit.onabort = resolve);
        const end = await Promise.race([builder.read(), outlived]);
        assertEquals(end, { value: undefined, done: true }, "the builder is gone");
        // What is not the builder itself (bwrap's processes) may still be on its way out.
        await waitFor("the builder's processes to be gone", () => processesOf(flag).size === 0);
        assertEquals((await store.run(["store", "path-info", a.outputs.out])).code, 1);
        Deno.writeTextFileSync(flag, "");
        const r = await store.run(["build", ...mode, a.path]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(Deno.readTextFileSync(store.physical(a.outputs.out)), "done\n");
      }),
  });
}
