import { parseSandboxPath } from "../../lib/sandbox/mod.ts";
import { assertEquals } from "../_assert.ts";

/** Entry -> [sandbox path, host path, optional]. */
function check(cases: Record<string, [string, string, boolean]>): void {
  for (const [entry, [sandboxPath, hostPath, optional]] of Object.entries(cases)) {
    assertEquals(parseSandboxPath(entry), { sandboxPath, hostPath, optional }, entry);
  }
}

Deno.test("parseSandboxPath() reads PATH, PATH=HOSTPATH and a trailing '?'", () =>
  check({
    "/bin/sh": ["/bin/sh", "/bin/sh", false],
    "/bin/sh=/nix/store/abc-busybox/bin/busybox": [
      "/bin/sh",
      "/nix/store/abc-busybox/bin/busybox",
      false,
    ],
    "/dev/nvidiactl?": ["/dev/nvidiactl", "/dev/nvidiactl", true],
    "/etc/x=/host/x?": ["/etc/x", "/host/x", true],
  }));

Deno.test("parseSandboxPath() splits at the first '=', as Nix does, so the host path may hold one", () =>
  check({
    "/data=/srv/key=value?": ["/data", "/srv/key=value", true],
    "/a==/b": ["/a", "=/b", false],
  }));
