/**
 * The Linux build sandbox through bubblewrap, laid out as Nix 2.8's chroot: only the input
 * closure and `sandbox-paths` visible, the build dir at `/build`, private /tmp, /proc and a
 * minimal /dev, Nix's /etc/passwd and /etc/group, hostname `localhost`, no network except for
 * fixed-output builds, and new PID, IPC, UTS (and by default user) namespaces.
 */

import { delimiter, join } from "node:path";

export interface BwrapConfig {
  /** Logical store directory, as builders see it (`/nix/store`). */
  storeDir: string;
  /** Physical root the store lives under (`/` when logical and physical paths coincide). */
  storeRoot?: string;
  /**
   * Host directory prepared by `prepareSandbox`: `etc/` holds the sandbox's passwd, group and
   * hosts, and `store/` is mounted writable at `storeDir`, so builder outputs land there (the
   * caller moves them into the real store afterwards, as Nix moves them out of its chroot).
   */
  rootDir: string;
  /** Host build directory, mounted at `sandboxBuildDir`. */
  buildDir: string;
  /** Where the build dir appears (Nix's `sandbox-build-dir`, default `/build`). */
  sandboxBuildDir?: string;
  /** Logical store paths of the input closure, mounted read-only. */
  inputPaths: readonly string[];
  /** Nix's `sandbox-paths`: `PATH`, `PATH=HOSTPATH`, a trailing `?` for optional ones. */
  sandboxPaths?: readonly string[];
  /** Fixed-output builds keep the host network and get its resolv.conf, services and hosts. */
  fixedOutput: boolean;
  /** Run as uid 1000 / gid 100 in a new user namespace (default true), as Nix does. */
  userNamespace?: boolean;
  /** The bwrap executable (default: `bwrap` found on the PATH). */
  bwrapPath?: string;
}

/** Nix's default `sandbox-paths`. */
export const DEFAULT_SANDBOX_PATHS: readonly string[] = ["/bin/sh"];

/** Nix's default `sandbox-build-dir`. */
export const DEFAULT_SANDBOX_BUILD_DIR = "/build";

const SANDBOX_UID = 1000;
const SANDBOX_GID = 100;

/** Writes the sandbox's /etc files and creates its writable store directory. */
export async function prepareSandbox(config: BwrapConfig): Promise<void> {
  const etc = join(config.rootDir, "etc");
  const store = join(config.rootDir, "store");
  await Deno.mkdir(etc, { recursive: true });
  await Deno.mkdir(store, { recursive: true });
  await Deno.chmod(store, 0o1775);
  const { uid, gid } = sandboxIds(config);
  const buildDir = config.sandboxBuildDir ?? DEFAULT_SANDBOX_BUILD_DIR;
  await Deno.writeTextFile(
    join(etc, "passwd"),
    `root:x:0:0:Nix build user:${buildDir}:/noshell\n` +
      `nixbld:x:${uid}:${gid}:Nix build user:${buildDir}:/noshell\n` +
      "nobody:x:65534:65534:Nobody:/:/noshell\n",
  );
  await Deno.writeTextFile(
    join(etc, "group"),
    `root:x:0:\nnixbld:!:${gid}:\nnogroup:x:65534:\n`,
  );
  // Fixed-output builds use nsswitch.conf (and the host's hosts), the others this hosts file.
  await Deno.writeTextFile(join(etc, "nsswitch.conf"), "hosts: files dns\nservices: files\n");
  await Deno.writeTextFile(join(etc, "hosts"), "127.0.0.1 localhost\n::1 localhost\n");
}

/** bwrap's arguments up to (not including) the builder's argv; pure. */
export function bwrapArgs(config: BwrapConfig): string[] {
  const buildDir = config.sandboxBuildDir ?? DEFAULT_SANDBOX_BUILD_DIR;
  const storeRoot = config.storeRoot ?? "/";
  const etc = join(config.rootDir, "etc");
  const args = ["--die-with-parent", "--new-session"];
  if (config.userNamespace ?? true) {
    args.push("--unshare-user", "--uid", String(SANDBOX_UID), "--gid", String(SANDBOX_GID));
  }
  args.push("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "localhost");
  if (!config.fixedOutput) args.push("--unshare-net");
  args.push("--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp");
  args.push("--bind", join(config.rootDir, "store"), config.storeDir);
  for (const path of [...config.inputPaths].sort()) {
    args.push("--ro-bind", storeRoot === "/" ? path : join(storeRoot, path), path);
  }
  for (const entry of config.sandboxPaths ?? DEFAULT_SANDBOX_PATHS) {
    const optional = entry.endsWith("?");
    const spec = optional ? entry.slice(0, -1) : entry;
    if (spec === "") continue;
    const eq = spec.indexOf("=");
    const [target, source] = eq < 0 ? [spec, spec] : [spec.slice(0, eq), spec.slice(eq + 1)];
    args.push(optional ? "--ro-bind-try" : "--ro-bind", source, target);
  }
  args.push("--ro-bind", join(etc, "passwd"), "/etc/passwd");
  args.push("--ro-bind", join(etc, "group"), "/etc/group");
  if (config.fixedOutput) {
    args.push("--ro-bind", join(etc, "nsswitch.conf"), "/etc/nsswitch.conf");
    for (const file of ["/etc/resolv.conf", "/etc/services", "/etc/hosts"]) {
      args.push("--ro-bind-try", file, file);
    }
  } else {
    args.push("--ro-bind", join(etc, "hosts"), "/etc/hosts");
  }
  args.push("--bind", config.buildDir, buildDir, "--chdir", buildDir);
  return args;
}

/** Finds `bwrap` on the PATH; undefined if it is not there. */
export function findBwrap(): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, "bwrap");
    try {
      if (Deno.statSync(candidate).isFile) return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Whether sandboxed builds work here: bwrap present, namespaces allowed. */
export async function probeSandbox(
  options: { bwrapPath?: string; userNamespace?: boolean } = {},
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const bwrap = options.bwrapPath ?? findBwrap();
  if (bwrap === undefined) return { ok: false, reason: "bwrap is not on the PATH" };
  const args = ["--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts"];
  if (options.userNamespace ?? true) {
    args.push("--unshare-user", "--uid", String(SANDBOX_UID), "--gid", String(SANDBOX_GID));
  }
  args.push("--unshare-net", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true");
  try {
    // A one-off check, not a builder: spawn.ts stays the only place builders are started.
    const result = await new Deno.Command(bwrap, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (result.success) return { ok: true };
    const message = new TextDecoder().decode(result.stderr).trim().split("\n")[0];
    return { ok: false, reason: message || `bwrap exited with code ${result.code}` };
  } catch (error) {
    return { ok: false, reason: `cannot run ${bwrap}: ${(error as Error).message}` };
  }
}

function sandboxIds(config: BwrapConfig): { uid: number; gid: number } {
  if (config.userNamespace ?? true) return { uid: SANDBOX_UID, gid: SANDBOX_GID };
  return { uid: Deno.uid() ?? 0, gid: Deno.gid() ?? 0 };
}
