/**
 * The daemon's trust, with a second account (`kilnuser`, made as CI makes it) running Nix 2.8's
 * client through the socket: root only can run these.
 */

import { join } from "node:path";
import { assert, assertEquals, assertStringIncludes } from "../_assert.ts";
import { nixAvailable } from "../_nix.ts";
import { type ProcessResult, runProcess } from "../_process.ts";
import { type DaemonFixture, instantiate, withDaemon } from "./_daemon.ts";

const USER = "kilnuser";

/** Whether `kilnuser` exists now, made here (as .ci/run makes it) when this runs as root. */
function haveUser(): boolean {
  if (!nixAvailable || Deno.uid() !== 0) return false;
  const exists = () =>
    new Deno.Command("id", { args: [USER], stdout: "null", stderr: "null" })
      .outputSync().success;
  if (!exists()) new Deno.Command("useradd", { args: ["-m", USER] }).outputSync();
  return exists();
}

const ignore = !haveUser();

/** Runs a Nix program as kilnuser against the daemon, in a home and state dirs of its own. */
function nixAsUser(
  d: DaemonFixture,
  cmd: string,
  args: string[],
  stdin?: Uint8Array | string,
): Promise<ProcessResult> {
  const home = join(d.store.root, "user-home");
  Deno.mkdirSync(home, { recursive: true });
  new Deno.Command("chown", { args: [USER, home] }).outputSync();
  const env = {
    ...d.env,
    HOME: home,
    NIX_STATE_DIR: join(home, "state"),
    NIX_LOG_DIR: join(home, "log"),
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  };
  const assignments = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return runProcess("runuser", ["-u", USER, "--", "env", "-i", ...assignments, cmd, ...args], {
    env: {},
    stdin,
  });
}

/** An input-addressed path built through the daemon, exported, then deleted from the store. */
async function unsignedExport(d: DaemonFixture): Promise<{ path: string; nar: Uint8Array }> {
  const drv = await instantiate(d, "exported", "echo exported > $out");
  // Built by kiln itself, so that no temporary root of the daemon's keeps it alive.
  const path = (await d.store.ok(["build", drv])).trim();
  const exported = await d.nix("nix-store", ["--export", path]);
  assertEquals(exported.code, 0, exported.stderr);
  await d.store.ok(["store", "delete", path]);
  assertEquals(
    (await d.nixOk("nix-store", ["--check-validity", "--print-invalid", path])).trim(),
    path,
  );
  return { path, nar: exported.bytes };
}

Deno.test({
  name: "kiln daemon: an untrusted user queries, adds and builds, but cannot import or unsafe-set",
  ignore,
  fn: () =>
    withDaemon(async (d) => {
      // Content-addressed adds and builds are anyone's.
      const file = join(d.store.root, "user-file.txt");
      Deno.writeTextFileSync(file, "from kilnuser\n");
      const added = await nixAsUser(d, "nix-store", ["--add", file]);
      assertEquals(added.code, 0, added.stderr);
      assertEquals(Deno.readTextFileSync(added.stdout.trim()), "from kilnuser\n");
      const expr = join(d.store.root, "user.nix");
      Deno.writeTextFileSync(
        expr,
        `derivation { name = "user-built"; system = builtins.currentSystem; builder = "/bin/sh";
          args = [ "-c" "echo built-by-user > $out" ]; }`,
      );
      const drv = await nixAsUser(d, "nix-instantiate", [expr]);
      assertEquals(drv.code, 0, drv.stderr);
      const built = await nixAsUser(d, "nix-store", ["--realise", drv.stdout.trim()]);
      assertEquals(built.code, 0, built.stderr);
      assertEquals(Deno.readTextFileSync(built.stdout.trim()), "built-by-user\n");
      const hash = await nixAsUser(d, "nix-store", ["-q", "--hash", built.stdout.trim()]);
      assertEquals(hash.code, 0, hash.stderr);
      assert(hash.stdout.startsWith("sha256:"), hash.stdout);

      // An unsigned input-addressed path is refused, and stays out of the store.
      const { path, nar } = await unsignedExport(d);
      const imported = await nixAsUser(d, "nix-store", ["--import"], nar);
      assertEquals(imported.code, 1, imported.stderr);
      assertStringIncludes(
        imported.stderr,
        `cannot add path '${path}' because it lacks a signature by a trusted key`,
      );
      assertEquals(
        (await d.nixOk("nix-store", ["--check-validity", "--print-invalid", path])).trim(),
        path,
      );
      // Root, trusted by default, may import it.
      const byRoot = await runProcess("nix-store", ["--import"], { env: d.env, stdin: nar });
      assertEquals(byRoot.code, 0, byRoot.stderr);
      assertEquals(byRoot.stdout.trim(), path);

      // Restricted settings are ignored with Nix's warning: the build runs as the daemon says.
      const noisy = await instantiate(d, "noisy", "echo 0123456789abcdef; echo done > $out");
      const unsafe = await nixAsUser(d, "nix-store", [
        "--realise",
        "--option",
        "sandbox",
        "false",
        "--option",
        "max-build-log-size",
        "4",
        noisy,
      ]);
      assertEquals(unsafe.code, 0, unsafe.stderr);
      for (const name of ["sandbox", "max-build-log-size"]) {
        assertStringIncludes(
          unsafe.stderr,
          `warning: ignoring the client-specified setting '${name}', because it is a restricted setting and you are not a trusted user`,
        );
      }
      // The same from root applies (the builder outlives the limit, so only the limit ends it).
      const loud = await instantiate(d, "loud", "echo 0123456789abcdef; exec /bin/sleep 600");
      const limited = await d.nix("nix-store", [
        "--realise",
        "--option",
        "max-build-log-size",
        "4",
        loud,
      ]);
      assertEquals(limited.code, 1, limited.stderr);
      assert(!limited.stderr.includes("ignoring the client-specified"), limited.stderr);
      assertStringIncludes(limited.stderr, "killed after writing more than 4 bytes of log output");
    }),
});

Deno.test({
  name: "kiln daemon: a user outside allowed-users is refused, a group's member is trusted",
  ignore,
  fn: async () => {
    await withDaemon(async (d) => {
      // Root is trusted, so allowed whatever allowed-users says.
      const file = join(d.store.root, "root-file.txt");
      Deno.writeTextFileSync(file, "from root\n");
      const path = (await d.nixOk("nix-store", ["--add", file])).trim();
      const refused = await nixAsUser(d, "nix-store", ["-q", "--hash", path]);
      assert(refused.code !== 0, refused.stderr);
      assertEquals(refused.stdout, "");
      await d.logged(
        `kiln daemon: connection closed: user '${USER}' is not allowed to connect to the Nix daemon`,
      );
    }, "allowed-users = @wheel nobody\n");
    await withDaemon(async (d) => {
      const { path, nar } = await unsignedExport(d);
      const imported = await nixAsUser(d, "nix-store", ["--import"], nar);
      assertEquals(imported.code, 0, imported.stderr);
      assertEquals(imported.stdout.trim(), path);
    }, `trusted-users = root @${USER}\nallowed-users = root\n`);
  },
});
