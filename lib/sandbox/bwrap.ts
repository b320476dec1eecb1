/**
 * The Linux build sandbox through bubblewrap, laid out as Nix 2.8's chroot: only the input
 * closure and `sandbox-paths` visible, the build dir at `/build`, private /tmp, /proc and a
 * minimal /dev, Nix's /etc/passwd and /etc/group, hostname `localhost`, no network except for
 * fixed-output builds, and new PID, IPC, UTS (and by default user) namespaces.
 */

import { basename, delimiter, join } from "node:path";
import { directoryInodes, lutimes, removeTree } from "../store/mod.ts";
import { sandboxPathsOf } from "./sandbox_path.ts";
import { runProbe } from "./_probe.ts";

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
  /**
   * What the sandboxes of a run share (`makeSandboxShare`); without it `prepareSandbox` writes
   * `<rootDir>/etc` and gives the build private copies of its small inputs.
   */
  share?: SandboxShare;
  /**
   * Inputs `prepareSandbox` copied into `<rootDir>/store` (what it returns); the others are
   * bind-mounted read-only.
   */
  copiedInputs?: readonly string[];
  /** Fixed-output builds keep the host network and get its resolv.conf, services and hosts. */
  fixedOutput: boolean;
  /** Run as uid 1000 / gid 100 in a new user namespace (default true), as Nix does. */
  userNamespace?: boolean;
  /** The bwrap executable (default: `bwrap` found on the PATH). */
  bwrapPath?: string;
  /** What runs the sandbox (default bwrap; see `namespaces.ts` for the other). */
  backend?: SandboxBackend;
}

/** How sandboxed builders are run: bubblewrap, or util-linux `unshare` (user namespaces). */
export type SandboxBackend = "bwrap" | "namespaces";

/** Nix's default `sandbox-build-dir`. */
export const DEFAULT_SANDBOX_BUILD_DIR = "/build";

/** The builder's uid and gid in the sandbox, as in Nix. */
export const SANDBOX_UID = 1000;
export const SANDBOX_GID = 100;

/**
 * Input files up to this size (and symlinks) are copied into the sandbox's store instead of
 * being bind-mounted: bwrap re-reads its whole mount table for every mount, so a mount costs more
 * the more there are (a chain of 200 derivations, each seeing all before it, spent most of its
 * time there). A copy is as isolated as a mount: no builder can change what another one sees.
 */
const COPY_LIMIT = 1 << 16;
/** Owner of the shared input copies: a uid the sandbox does not map (it shows as nobody). */
const SHARED_COPY_OWNER = 65534;

/** What the sandboxes of one run share (see {@link makeSandboxShare}). */
export interface SandboxShare {
  /** The sandbox's passwd, group, hosts and nsswitch.conf. */
  etcDir: string;
  /**
   * Copies of small input files and symlinks, each made once per run and hard-linked into every
   * build's store (a link costs far less than a new file). The copies belong to a uid no
   * sandbox maps, so no builder can change them. Absent where this process cannot give files
   * away (not root): each build then copies its inputs.
   */
  inputsDir?: string;
  /** What each input was found to be (store paths do not change), so that it is looked at once. */
  inputInfo: Map<string, Deno.FileInfo>;
  /** The directory all this lives in (removed when the run ends). */
  dir: string;
  /** Roots of finished builds, in `dir`, for the next builds (with `inputsDir` only). */
  kept: string[];
  /** The inode of each shared copy in `inputsDir`, by name. */
  inodes: Map<string, number>;
}

/**
 * Creates `dir` (on the store's file system, for hard links into the sandbox stores) holding
 * the /etc files of a run's sandboxes and, as root, the shared input copies.
 */
export function makeSandboxShare(
  dir: string,
  options: { sandboxBuildDir?: string; userNamespace?: boolean },
): SandboxShare {
  const etcDir = join(dir, "etc");
  writeSandboxEtc(etcDir, options);
  const share = { etcDir, dir, inputInfo: new Map(), kept: [], inodes: new Map() };
  if (Deno.uid() !== 0 || !(options.userNamespace ?? true)) return share;
  const inputsDir = join(dir, "inputs");
  Deno.mkdirSync(inputsDir);
  return { ...share, inputsDir };
}

/** Writes the sandbox's /etc files (passwd, group, hosts, nsswitch.conf) into `dir`, created. */
export function writeSandboxEtc(
  dir: string,
  options: { sandboxBuildDir?: string; userNamespace?: boolean },
): void {
  Deno.mkdirSync(dir, { recursive: true });
  const { uid, gid } = sandboxIds(options);
  const buildDir = options.sandboxBuildDir ?? DEFAULT_SANDBOX_BUILD_DIR;
  Deno.writeTextFileSync(
    join(dir, "passwd"),
    `root:x:0:0:Nix build user:${buildDir}:/noshell\n` +
      `nixbld:x:${uid}:${gid}:Nix build user:${buildDir}:/noshell\n` +
      "nobody:x:65534:65534:Nobody:/:/noshell\n",
  );
  Deno.writeTextFileSync(join(dir, "group"), `root:x:0:\nnixbld:!:${gid}:\nnogroup:x:65534:\n`);
  // Fixed-output builds use nsswitch.conf (and the host's hosts), the others this hosts file.
  Deno.writeTextFileSync(join(dir, "nsswitch.conf"), "hosts: files dns\nservices: files\n");
  Deno.writeTextFileSync(join(dir, "hosts"), "127.0.0.1 localhost\n::1 localhost\n");
}

/**
 * Creates the sandbox's writable store directory `<rootDir>/store` (and `<rootDir>/etc` without
 * a `share`) and puts the small input files and symlinks into it, with their mode and mtime:
 * links to the shared copies, else copies. Returns those inputs, for `copiedInputs`.
 *
 * With shared copies, the root of a finished build (see {@link releaseSandboxRoot}) is taken over
 * where there is one: its links that this build needs stay (a link is checked by its inode, so
 * one that a builder replaced is made again), and everything else in it goes. Along a chain, where
 * each build sees all the ones before it, a build then makes one link instead of hundreds.
 */
export function prepareSandbox(config: BwrapConfig): Promise<string[]> {
  const store = join(config.rootDir, "store");
  const share = config.share;
  const inputsDir = share?.inputsDir;
  const left = share && inputsDir !== undefined ? takeKeptRoot(share, config.rootDir) : undefined;
  if (left === undefined) {
    Deno.mkdirSync(store, { recursive: true });
    Deno.chmodSync(store, 0o1775);
  }
  if (share === undefined) writeSandboxEtc(join(config.rootDir, "etc"), config);
  const copied: string[] = [];
  for (const path of config.inputPaths) {
    const host = hostPath(config, path);
    let info = share?.inputInfo.get(path);
    if (info === undefined) {
      info = Deno.lstatSync(host);
      share?.inputInfo.set(path, info);
    }
    if (!info.isSymlink && !(info.isFile && info.size <= COPY_LIMIT)) continue;
    const name = basename(path);
    const dest = join(store, name);
    if (share === undefined || inputsDir === undefined) {
      copyInput(host, dest, info);
    } else {
      const found = left?.get(name);
      left?.delete(name);
      if (found === undefined || found !== share.inodes.get(name)) {
        if (found !== undefined) removeTree(dest); // a builder put something else there
        const shared = join(inputsDir, name);
        try {
          Deno.linkSync(shared, dest);
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
          copyInput(host, shared, info);
          if (info.isFile) Deno.chownSync(shared, SHARED_COPY_OWNER, SHARED_COPY_OWNER);
          share.inodes.set(name, Deno.lstatSync(shared).ino!);
          Deno.linkSync(shared, dest);
        }
      }
    }
    copied.push(path);
  }
  // What the earlier build left that this one must not see: its outputs, other inputs, litter.
  for (const name of left?.keys() ?? []) removeTree(join(store, name));
  return Promise.resolve(copied);
}

/** Roots of finished builds kept for the next ones (a few: -j N builds run at once). */
const KEPT_ROOTS = 4;

/**
 * Hands the root of a finished sandboxed build (its outputs moved out, or abandoned) to the next
 * `prepareSandbox` of the run; returns false where it cannot be kept (no shared copies, or enough
 * kept already): the caller removes it then.
 */
export function releaseSandboxRoot(share: SandboxShare | undefined, rootDir: string): boolean {
  if (share?.inputsDir === undefined || share.kept.length >= KEPT_ROOTS) return false;
  const kept = join(share.dir, `kept-${crypto.randomUUID().slice(0, 8)}`);
  try {
    Deno.renameSync(rootDir, kept);
  } catch {
    return false;
  }
  share.kept.push(kept);
  return true;
}

/** Moves a kept root to `rootDir`; returns what its store holds (name to inode), or undefined. */
function takeKeptRoot(share: SandboxShare, rootDir: string): Map<string, number> | undefined {
  const kept = share.kept.pop();
  if (kept === undefined) return undefined;
  try {
    Deno.renameSync(kept, rootDir);
    return directoryInodes(join(rootDir, "store"));
  } catch {
    removeTree(rootDir);
    removeTree(kept);
    return undefined;
  }
}

/** Copies a store file or symlink `host` to `dest`, keeping its mode and times. */
function copyInput(host: string, dest: string, info: Deno.FileInfo): void {
  if (info.isSymlink) {
    Deno.symlinkSync(Deno.readLinkSync(host), dest);
    lutimes(dest, seconds(info.atime), seconds(info.mtime));
    return;
  }
  const mode = info.mode! & 0o777;
  Deno.writeFileSync(dest, Deno.readFileSync(host), { mode });
  if ((mode & Deno.umask()) !== 0) Deno.chmodSync(dest, mode);
  Deno.utimeSync(dest, info.atime ?? 1, info.mtime ?? 1);
}

/** bwrap's arguments up to (not including) the builder's argv; pure. */
export function bwrapArgs(config: BwrapConfig): string[] {
  const buildDir = config.sandboxBuildDir ?? DEFAULT_SANDBOX_BUILD_DIR;
  const etc = config.share?.etcDir ?? join(config.rootDir, "etc");
  const copied = new Set(config.copiedInputs);
  const args = ["--die-with-parent", "--new-session"];
  if (config.userNamespace ?? true) {
    args.push("--unshare-user", "--uid", String(SANDBOX_UID), "--gid", String(SANDBOX_GID));
  }
  args.push("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "localhost");
  if (!config.fixedOutput) args.push("--unshare-net");
  args.push("--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp");
  args.push("--bind", join(config.rootDir, "store"), config.storeDir);
  for (const path of [...config.inputPaths].sort()) {
    if (!copied.has(path)) args.push("--ro-bind", hostPath(config, path), path);
  }
  for (const { sandboxPath, hostPath, optional } of sandboxPathsOf(config.sandboxPaths)) {
    args.push(optional ? "--ro-bind-try" : "--ro-bind", hostPath, sandboxPath);
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
  const path = Deno.env.get("PATH") ?? "";
  if (foundBwrap?.path !== path) foundBwrap = { path, bwrap: searchPath(path, "bwrap") };
  return foundBwrap.bwrap;
}

/** The last search, by PATH: a search costs a failed stat (an exception) per directory. */
let foundBwrap: { path: string; bwrap: string | undefined } | undefined;

function searchPath(path: string, name: string): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    try {
      if (Deno.statSync(candidate).isFile) return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Whether bwrap sandboxes work here: bwrap present, namespaces allowed. */
export async function probeBwrap(
  options: { bwrapPath?: string; userNamespace?: boolean } = {},
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const bwrap = options.bwrapPath ?? findBwrap();
  if (bwrap === undefined) return { ok: false, reason: "bwrap is not on the PATH" };
  const args = ["--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts"];
  if (options.userNamespace ?? true) {
    args.push("--unshare-user", "--uid", String(SANDBOX_UID), "--gid", String(SANDBOX_GID));
  }
  args.push("--unshare-net", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true");
  return await runProbe(bwrap, args);
}

function sandboxIds(options: { userNamespace?: boolean }): { uid: number; gid: number } {
  if (options.userNamespace ?? true) return { uid: SANDBOX_UID, gid: SANDBOX_GID };
  return { uid: Deno.uid() ?? 0, gid: Deno.gid() ?? 0 };
}

/** Where the store path `path` is on the host. */
function hostPath(config: BwrapConfig, path: string): string {
  const storeRoot = config.storeRoot ?? "/";
  return storeRoot === "/" ? path : join(storeRoot, path);
}

/** A file time in seconds since the epoch; 1 (Nix's canonical time) where it is unknown. */
function seconds(time: Date | null): number {
  return time === null ? 1 : time.getTime() / 1000;
}
