import { probeSandbox, type SandboxBackend } from "../../lib/sandbox/mod.ts";
import { assert, assertEquals } from "../_assert.ts";
import { addAll, HOST_SANDBOX_PATHS, type TestDrv, withStore } from "./_drv.ts";

const works = new Map<SandboxBackend, boolean>();
for (const backend of ["bwrap", "namespaces"] as const) {
  works.set(backend, (await probeSandbox({ backend })).ok);
}
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Polls `check` every 20 ms for up to 10 s (end-to-end: real processes take real time). */
async function waitFor(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

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
    const step = (name: string, inputs = [] as TestDrv[]) =>
      set.add({
        name,
        inputs,
        script: `echo ${name} >> ${log}; /bin/sleep 0.1; echo ${name} > $out`,
      });
    const s1 = step("s1");
    const s2 = step("s2", [s1]);
    const x = step("x", [s2, step("x1")]);
    const y = step("y", [s2, step("y1")]);
    await addAll(store, set);
    const [rx, ry] = await Promise.all([
      store.run(["build", "--no-sandbox", x.path]),
      store.run(["build", "--no-sandbox", y.path]),
    ]);
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
        const a = set.add({
          name: "slow",
          script: `if [ -e ${flag} ]; then echo done > $out; exit 0; fi; ` +
            `echo partial > $out; /bin/sleep 60 & wait`,
        });
        await addAll(store, set);
        const mode = sandbox
          ? ["--sandbox", "--sandbox-paths", `${HOST_SANDBOX_PATHS} ${dir}`]
          : ["--no-sandbox"];
        if (sandbox) mode.push("--option", "sandbox-backend", sandbox);
        const child = new Deno.Command(Deno.execPath(), {
          args: ["run", "--allow-all", "--quiet", MAIN, "build", ...mode, a.path],
          env: store.env,
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        await waitFor("the builder to start", () => {
          return [...processesOf(flag).values()].includes("sleep");
        });
        child.kill(signal);
        const out = await child.output();
        assert(out.code !== 0);
        if (signal !== "SIGKILL") {
          assertEquals(out.code, 1, new TextDecoder().decode(out.stderr));
        }
        await waitFor("the builder to die", () => processesOf(flag).size === 0);
        assertEquals((await store.run(["store", "path-info", a.outputs.out])).code, 1);
        Deno.writeTextFileSync(flag, "");
        const r = await store.run(["build", ...mode, a.path]);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(Deno.readTextFileSync(store.physical(a.outputs.out)), "done\n");
      }),
  });
}
