import { join } from "node:path";
import {
  bwrapArgs,
  type BwrapConfig,
  makeSandboxShare,
  prepareSandbox,
  probeSandbox,
  type SandboxBackend,
  spawnBuilder,
} from "../../lib/sandbox/mod.ts";
import { assert, assertEquals } from "../_assert.ts";
import { readLines, readText, waitUntilGone } from "./_process.ts";

/** The sandbox tests run for each backend that works here, and are ignored for the others. */
const BACKENDS: SandboxBackend[] = ["bwrap", "namespaces"];
const working = new Map<SandboxBackend, boolean>();
for (const backend of BACKENDS) working.set(backend, (await probeSandbox({ backend })).ok);

const STORE = "/nix/store";
const INPUT = `${STORE}/q4mzjdlh5px6977h7v5fdsk1p33yg583-input`;
const HIDDEN = `${STORE}/f8g8x4m83da3b2f79iv84q2r3qlc58lr-hidden`;
const OUT = `${STORE}/xgskw9kbh807ah56r4f4kxdh0fa1i0ip-out`;
// The host's dynamically linked /bin/sh needs its libraries: visible as sandbox paths here.
const HOST_PATHS = ["/bin", "/usr", "/lib", "/lib64?"];

/** A physical store root with one input and one path outside the closure, plus a host secret. */
async function withSandbox(
  backend: SandboxBackend,
  fixedOutput: boolean,
  fn: (config: BwrapConfig, top: string) => Promise<void>,
): Promise<void> {
  const top = Deno.makeTempDirSync({ prefix: "kiln-bwrap-" });
  try {
    const phys = join(top, "phys");
    for (const path of [INPUT, HIDDEN]) {
      Deno.mkdirSync(join(phys, path), { recursive: true });
      Deno.writeTextFileSync(join(phys, path, "file"), `contents of ${path}`);
    }
    Deno.writeTextFileSync(join(top, "secret"), "secret");
    Deno.mkdirSync(join(top, "build"));
    const config: BwrapConfig = {
      storeDir: STORE,
      storeRoot: phys,
      rootDir: join(top, "root"),
      buildDir: join(top, "build"),
      inputPaths: [INPUT],
      sandboxPaths: HOST_PATHS,
      fixedOutput,
      backend,
    };
    await prepareSandbox(config);
    await fn(config, top);
  } finally {
    Deno.removeSync(top, { recursive: true });
  }
}

/** Runs a shell script in the sandbox; returns its output once it has exited. */
async function runInSandbox(config: BwrapConfig, script: string): Promise<string> {
  await using handle = await spawnBuilder({
    program: "/bin/sh",
    args: ["-c", script],
    env: { PATH: "/usr/bin:/bin", out: OUT },
    cwd: "/",
    sandbox: config,
  });
  const text = await readText(handle.output);
  assertEquals(await handle.status, { code: 0, signal: null });
  return text;
}

function interfaces(procNetDev: string): string[] {
  return procNetDev.split("\n").slice(2).filter((l) => l.includes(":")).map((l) =>
    l.split(":")[0].trim()
  ).sort();
}

Deno.test("bwrapArgs() maps physical store paths and sandbox-paths", () => {
  const args = bwrapArgs({
    storeDir: STORE,
    storeRoot: "/phys",
    rootDir: "/r",
    buildDir: "/tmp/b",
    inputPaths: [INPUT],
    sandboxPaths: ["/bin/sh=/phys/busybox", "/usr/lib?", "/data=/srv/k=v", ""],
    fixedOutput: false,
  }).join(" ");
  assert(args.includes(`--bind /r/store ${STORE}`), args);
  assert(args.includes(`--ro-bind /phys${INPUT} ${INPUT}`), args);
  assert(args.includes("--ro-bind /phys/busybox /bin/sh"), args);
  assert(args.includes("--ro-bind-try /usr/lib /usr/lib"), args);
  assert(args.includes("--ro-bind /srv/k=v /data"), args);
  assert(args.includes("--unshare-net"), args);
  assert(args.includes("--uid 1000 --gid 100"), args);
  assert(args.endsWith("--bind /tmp/b /build --chdir /build"), args);
});

Deno.test("bwrapArgs() mounts only the inputs prepareSandbox did not copy", () => {
  const args = bwrapArgs({
    storeDir: STORE,
    rootDir: "/r",
    buildDir: "/tmp/b",
    inputPaths: [INPUT, HIDDEN],
    copiedInputs: [HIDDEN],
    share: { etcDir: "/s/etc", dir: "/s", inputInfo: new Map(), kept: [], inodes: new Map() },
    fixedOutput: false,
  }).join(" ");
  assert(args.includes(`--ro-bind ${INPUT} ${INPUT}`), args);
  assert(!args.includes(HIDDEN), args);
  assert(args.includes("--ro-bind /s/etc/passwd /etc/passwd"), args);
});

for (const backend of BACKENDS) {
  const ignore = !working.get(backend);

  Deno.test({
    name:
      `spawnBuilder() in the sandbox shows only the closure, /build, localhost and no network [${backend}]`,
    ignore,
    fn: () =>
      withSandbox(backend, false, async (config, top) => {
        const script = [
          "pwd; id -u; id -g; cat /proc/sys/kernel/hostname",
          `cat ${INPUT}/file; echo`,
          `test -e ${HIDDEN} && echo visible || echo hidden`,
          `test -e ${top}/secret && echo visible || echo hidden`,
          "stat -c %a /tmp; echo $$",
          "echo ===; cat /etc/passwd; echo ===; cat /etc/group; echo ===; cat /proc/net/dev",
          'mkdir "$out"; echo built > "$out/f"; touch /build/made-here',
        ].join("\n");
        const [head, passwd, group, netDev] = (await runInSandbox(config, script)).split("===\n");
        assertEquals(head.split("\n"), [
          "/build",
          "1000",
          "100",
          "localhost",
          `contents of ${INPUT}`,
          "hidden",
          "hidden",
          "1777",
          // The builder is PID 1 of its namespace as in Nix; bwrap's own init is PID 1 there.
          backend === "bwrap" ? "2" : "1",
          "",
        ]);
        assertEquals(
          passwd,
          "root:x:0:0:Nix build user:/build:/noshell\n" +
            "nixbld:x:1000:100:Nix build user:/build:/noshell\n" +
            "nobody:x:65534:65534:Nobody:/:/noshell\n",
        );
        assertEquals(group, "root:x:0:\nnixbld:!:100:\nnogroup:x:65534:\n");
        assertEquals(interfaces(netDev), ["lo"]);
        assertEquals(
          Deno.readTextFileSync(join(config.rootDir, "store", OUT.slice(11), "f")),
          "built\n",
        );
        assert(Deno.statSync(join(config.buildDir, "made-here")).isFile);
      }),
  });

  Deno.test({
    name:
      `prepareSandbox() copies small file and symlink inputs, shared copies unwritable [${backend}]`,
    ignore,
    fn: async () => {
      const top = Deno.makeTempDirSync({ prefix: "kiln-bwrap-" });
      try {
        const phys = join(top, "phys");
        const file = `${STORE}/q4mzjdlh5px6977h7v5fdsk1p33yg583-file`;
        const link = `${STORE}/f8g8x4m83da3b2f79iv84q2r3qlc58lr-link`;
        Deno.mkdirSync(join(phys, STORE), { recursive: true });
        Deno.writeTextFileSync(join(phys, file), "file contents", { mode: 0o444 });
        Deno.symlinkSync(file, join(phys, link));
        Deno.mkdirSync(join(top, "build"));
        const share = makeSandboxShare(join(top, "share"), {});
        for (const round of [1, 2]) {
          const config: BwrapConfig = {
            storeDir: STORE,
            storeRoot: phys,
            rootDir: join(top, `root${round}`),
            buildDir: join(top, "build"),
            inputPaths: [file, link],
            sandboxPaths: HOST_PATHS,
            fixedOutput: false,
            share,
            backend,
          };
          config.copiedInputs = await prepareSandbox(config);
          assertEquals(config.copiedInputs, [file, link]);
          const script = `cat ${file}; echo; readlink ${link}; ` +
            `chmod u+w ${file} 2>/dev/null || echo unchangeable; stat -c %a ${file}`;
          assertEquals(
            await runInSandbox(config, script),
            // A private copy may change (it is the builder's own); a shared one may not.
            `file contents\n${file}\n${share.inputsDir ? "unchangeable\n444" : "644"}\n`,
          );
        }
        assertEquals(Deno.readTextFileSync(join(phys, file)), "file contents");
      } finally {
        Deno.removeSync(top, { recursive: true });
      }
    },
  });

  Deno.test({
    name: `spawnBuilder() in the sandbox keeps the network for fixed-output builds [${backend}]`,
    ignore,
    fn: () =>
      withSandbox(backend, true, async (config) => {
        const script = "cat /proc/net/dev; echo ===; cat /etc/nsswitch.conf";
        const [netDev, nsswitch] = (await runInSandbox(config, script)).split("===\n");
        assertEquals(interfaces(netDev), interfaces(Deno.readTextFileSync("/proc/net/dev")));
        assertEquals(nsswitch, "hosts: files dns\nservices: files\n");
      }),
  });

  Deno.test({
    name: `kill() takes the whole sandbox down, grandchildren included [${backend}]`,
    ignore,
    fn: () =>
      withSandbox(backend, false, async (config) => {
        // "started" once both children run sleep (each has exec'd): the snapshot below sees them.
        const script = "sleep 1000 & a=$!; setsid sleep 1000 & b=$!; " +
          "until read x </proc/$a/comm && read y </proc/$b/comm && [ $x$y = sleepsleep ]; do :; done; " +
          "echo started; wait";
        await using handle = await spawnBuilder({
          program: "/bin/sh",
          args: ["-c", script],
          env: { PATH: "/usr/bin:/bin" },
          cwd: "/",
          sandbox: config,
        });
        const reader = handle.output.getReader();
        assertEquals(await readLines(reader, 1), ["started"]);
        const tree = hostDescendants(handle.pid);
        assertEquals(
          tree.filter((pid) => comm(pid) === "sleep").length,
          2,
          "sleeps are in the tree",
        );
        await handle.kill();
        assertEquals(await waitUntilGone(tree), []);
        reader.releaseLock();
      }),
  });
}

function comm(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
  } catch {
    return "";
  }
}

/** Host pids of every descendant of `root`. */
function hostDescendants(root: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      parents.set(Number(entry.name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // gone
    }
  }
  const result: number[] = [];
  const isBelow = (pid: number): boolean => {
    for (let p = parents.get(pid); p !== undefined && p > 1; p = parents.get(p)) {
      if (p === root) return true;
    }
    return false;
  };
  for (const pid of parents.keys()) if (isBelow(pid)) result.push(pid);
  return result;
}
