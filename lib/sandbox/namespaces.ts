/**
 * The build sandbox without bubblewrap: the kernel's user, mount, PID, IPC, UTS and network
 * namespaces through util-linux's `unshare` (on every Linux distribution), as nix-portable falls
 * back from bwrap to another runtime. kiln lays out the sandbox's root on the host
 * (`<rootDir>/ns`: empty mount points, symlinks) and writes its mounts as an fstab
 * (`<rootDir>/fstab`); in the namespaces one `mount --all` mounts them all, `hostname` names the
 * host, and a second `unshare` enters a nested user namespace that maps uid 1000 / gid 100 to the
 * first one's root, chroots into the root and execs the builder, which so holds no capabilities.
 *
 * Where it differs from bwrap: the builder is PID 1 of its namespace (as in Nix's own sandbox;
 * bwrap's is 2); there is no die-with-parent, so kiln's watchdog covers these builders (killing
 * `unshare` kills the namespace through `--kill-child`); the hostname is set only where
 * `hostname` is installed; the root is a read-only directory of kiln's user, not a tmpfs.
 *
 * The same machinery shows the store at its logical place to builders outside the sandbox
 * (`sandbox = false` with a store root other than `/`, see {@link makeStoreView}): a root whose
 * entries are the host's, bound recursively, plus the physical store at the store dir.
 */

import { dirname, join } from "node:path";
import { type BwrapConfig, DEFAULT_SANDBOX_BUILD_DIR, SANDBOX_GID, SANDBOX_UID } from "./bwrap.ts";
import { sandboxPathsOf } from "./sandbox_path.ts";
import { runProbe } from "./_probe.ts";

/**
 * Runs in the outer namespaces: `$1` the fstab, `$2` the hostname (empty: keep it), then
 * `env -i NAME=VALUE... unshare ...`: env(1) sets the builder's exact environment (sh would drop
 * names that are not shell names) before the nested unshare chroots. Exit 125 if setup fails.
 */
const SETUP_SCRIPT = 'mount --all --fstab "$1" || exit 125; ' +
  'if [ -n "$2" ] && command -v hostname >/dev/null; then hostname "$2" || exit 125; fi; ' +
  'shift 2; exec env -i -- "$@"';

/** What `mount` and `hostname` are found on in the namespace. */
const SETUP_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

/** Device nodes bound into the sandbox's /dev (bwrap's `--dev` set). */
const DEV_NODES = ["null", "zero", "full", "random", "urandom", "tty"];
const DEV_LINKS: [string, string][] = [
  ["fd", "/proc/self/fd"],
  ["stdin", "/proc/self/fd/0"],
  ["stdout", "/proc/self/fd/1"],
  ["stderr", "/proc/self/fd/2"],
  ["ptmx", "pts/ptmx"],
];

/** A root showing the host with the store at its logical place (see {@link makeStoreView}). */
export interface StoreView {
  rootDir: string;
  fstab: string;
}

/** What a builder run through `unshare` needs: its argv and the environment of the first exec. */
export interface NamespaceLaunch {
  argv: string[];
  env: Record<string, string>;
}

/**
 * Lays out the sandbox root of `config` (prepared by `prepareSandbox`) under `<rootDir>/ns` and
 * its mounts in `<rootDir>/fstab`; returns the command that runs `argv` in it with `env`.
 */
export function launchInNamespaces(
  config: BwrapConfig,
  builder: { argv: readonly string[]; env: Record<string, string> },
): NamespaceLaunch {
  const root = join(config.rootDir, "ns");
  const buildDir = config.sandboxBuildDir ?? DEFAULT_SANDBOX_BUILD_DIR;
  const etc = config.share?.etcDir ?? join(config.rootDir, "etc");
  const copied = new Set(config.copiedInputs);
  const table = new MountTable(root);
  // First what covers whole directories (a store dir may be under /tmp), as bwrap orders them.
  table.mount("proc", "/proc", "proc", "nosuid,nodev,noexec");
  for (const node of DEV_NODES.filter((n) => exists(`/dev/${n}`))) {
    table.bind(`/dev/${node}`, `/dev/${node}`, { options: "bind", isDir: false });
  }
  for (const [name, target] of DEV_LINKS) table.symlink(target, `/dev/${name}`);
  table.mount("tmpfs", "/dev/shm", "tmpfs", "nosuid,nodev,mode=1777");
  table.mount("devpts", "/dev/pts", "devpts", "newinstance,ptmxmode=0666,mode=620");
  table.mount("tmpfs", "/tmp", "tmpfs", "nosuid,nodev,mode=1777");
  table.bind(join(config.rootDir, "store"), config.storeDir, { options: "bind", own: true });
  for (const path of [...config.inputPaths].sort()) {
    if (copied.has(path)) continue;
    const isDir = config.share?.inputInfo.get(path)?.isDirectory;
    table.bind(hostPath(config, path), path, { options: "bind,ro", isDir });
  }
  for (const { sandboxPath, hostPath, optional } of sandboxPathsOf(config.sandboxPaths)) {
    if (optional && !exists(hostPath)) continue;
    table.bind(hostPath, sandboxPath, { options: "rbind,ro" });
  }
  table.bind(join(etc, "passwd"), "/etc/passwd", { options: "bind,ro" });
  table.bind(join(etc, "group"), "/etc/group", { options: "bind,ro" });
  if (config.fixedOutput) {
    table.bind(join(etc, "nsswitch.conf"), "/etc/nsswitch.conf", { options: "bind,ro" });
    for (const file of ["/etc/resolv.conf", "/etc/services", "/etc/hosts"]) {
      if (exists(file)) table.bind(file, file, { options: "bind,ro" });
    }
  } else {
    table.bind(join(etc, "hosts"), "/etc/hosts", { options: "bind,ro" });
  }
  table.bind(config.buildDir, buildDir, { options: "bind", own: true });
  // Last: the root itself read-only, the mounts in it as they are.
  table.bind(root, "/", { options: "rbind,ro" });
  const fstab = join(config.rootDir, "fstab");
  Deno.writeTextFileSync(fstab, table.text());
  const flags = ["--pid", "--kill-child", "--ipc", "--uts"];
  if (!config.fixedOutput) flags.push("--net");
  return {
    argv: outerArgv(flags, fstab, "localhost", builder, {
      root,
      cwd: buildDir,
      uid: SANDBOX_UID,
      gid: SANDBOX_GID,
    }),
    env: { PATH: SETUP_PATH },
  };
}

/**
 * Lays out, in `dir` (created), a root holding the host's top-level entries (directories bound
 * recursively, symlinks copied) and the physical store at the logical store dir, for builders
 * outside the sandbox: they see the host as it is and the store where its paths say. The host's
 * entry that holds the store dir (`/nix`) is left out: the view's holds only the store.
 */
export function makeStoreView(
  dir: string,
  options: { storeDir: string; storeRoot: string },
): StoreView {
  const rootDir = join(dir, "root");
  const table = new MountTable(rootDir);
  const top = options.storeDir.split("/")[1];
  for (const entry of Deno.readDirSync("/")) {
    if (entry.name === top) continue;
    const path = `/${entry.name}`;
    if (entry.isSymlink) table.symlink(Deno.readLinkSync(path), path);
    else {
      const isDir = entry.isDirectory;
      table.bind(path, path, { options: isDir ? "rbind" : "bind", isDir });
    }
  }
  const store = join(options.storeRoot, options.storeDir);
  table.bind(store, options.storeDir, { options: "bind", isDir: true });
  const fstab = join(dir, "fstab");
  Deno.writeTextFileSync(fstab, table.text());
  return { rootDir, fstab };
}

/** The command that runs `builder` in `view` as this process's user, in directory `cwd`. */
export function launchInStoreView(
  view: StoreView,
  builder: { argv: readonly string[]; env: Record<string, string>; cwd: string },
): NamespaceLaunch {
  const ids = { root: view.rootDir, cwd: builder.cwd, uid: Deno.uid() ?? 0, gid: Deno.gid() ?? 0 };
  return { argv: outerArgv([], view.fstab, "", builder, ids), env: { PATH: SETUP_PATH } };
}

function outerArgv(
  flags: string[],
  fstab: string,
  hostname: string,
  builder: { argv: readonly string[]; env: Record<string, string> },
  inner: { root: string; cwd: string; uid: number; gid: number },
): string[] {
  const unshare = findUnshare() ?? "/usr/bin/unshare";
  return [
    unshare,
    "--user",
    "--map-root-user",
    "--mount",
    ...flags,
    "/bin/sh",
    "-c",
    SETUP_SCRIPT,
    "kiln-sandbox",
    fstab,
    hostname,
    ...Object.entries(builder.env).map(([name, value]) => `${name}=${value}`),
    unshare,
    "--user",
    `--map-user=${inner.uid}`,
    `--map-group=${inner.gid}`,
    `--root=${inner.root}`,
    `--wd=${inner.cwd}`,
    "--",
    ...builder.argv,
  ];
}

/** An fstab being written, with the mount points it needs made under `root` on the host. */
class MountTable {
  #lines: string[] = [];
  #own: [string, string][] = [];
  constructor(readonly root: string) {
    Deno.mkdirSync(root, { recursive: true });
  }

  /**
   * Binds host `source` at `target` (`options`: fstab's), a directory or a file as `source` is
   * (`isDir` where the caller knows). `own`: a directory of kiln's (the sandbox's store, the build
   * dir), in which mount points of later binds below `target` are made.
   */
  bind(
    source: string,
    target: string,
    bind: { options: string; isDir?: boolean; own?: boolean },
  ): void {
    const dir = bind.isDir ?? Deno.statSync(source).isDirectory;
    this.#makePoint(this.#point(target), dir);
    if (bind.own) this.#own.push([target, source]);
    // A mount point under a file system mounted before (a tmpfs) is made when it is mounted.
    this.#add(source, target, "none", dir ? `${bind.options},X-mount.mkdir` : bind.options);
  }

  /** Where the mount point of `target` is on the host: in an own bind's source, else the root. */
  #point(target: string): string {
    let best: [string, string] | undefined;
    for (const own of this.#own) {
      if (!target.startsWith(`${own[0]}/`)) continue;
      if (best === undefined || own[0].length > best[0].length) best = own;
    }
    return best === undefined ? this.#path(target) : join(best[1], target.slice(best[0].length));
  }

  mount(source: string, target: string, type: string, options: string): void {
    this.#makePoint(this.#path(target), true);
    this.#add(source, target, type, options);
  }

  symlink(target: string, path: string): void {
    const link = this.#path(path);
    Deno.mkdirSync(dirname(link), { recursive: true });
    try {
      Deno.symlinkSync(target, link);
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
  }

  text(): string {
    return this.#lines.join("");
  }

  #path(target: string): string {
    return target === "/" ? this.root : join(this.root, target);
  }

  #makePoint(point: string, dir: boolean): void {
    if (dir) return void Deno.mkdirSync(point, { recursive: true });
    Deno.mkdirSync(dirname(point), { recursive: true });
    try {
      Deno.writeFileSync(point, new Uint8Array(), { createNew: true });
    } catch (error) {
      // There already (an input's copy, read-only): a mount point as it is.
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
  }

  #add(source: string, target: string, type: string, options: string): void {
    const fields = [source, this.#path(target), type, options].map(escapeField);
    this.#lines.push(`${fields.join(" ")} 0 0\n`);
  }
}

/** An fstab field: whitespace and backslashes as octal escapes. */
function escapeField(field: string): string {
  return field.replace(/[\s\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
}

function hostPath(config: BwrapConfig, path: string): string {
  const storeRoot = config.storeRoot ?? "/";
  return storeRoot === "/" ? path : join(storeRoot, path);
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

let unsharePath: string | undefined | null = null;

/** util-linux `unshare`, found where distributions put it. */
export function findUnshare(): string | undefined {
  if (unsharePath === null) {
    unsharePath = ["/usr/bin/unshare", "/bin/unshare"].find((p) => exists(p));
  }
  return unsharePath;
}

/**
 * Whether the namespace backend works here: `unshare` present, unprivileged user, mount, PID,
 * network, IPC and UTS namespaces allowed, `mount` and a nested `unshare --map-user` (util-linux
 * 2.38 or later) working.
 */
export async function probeNamespaces(): Promise<{ ok: true } | { ok: false; reason: string }> {
  const unshare = findUnshare();
  if (unshare === undefined) return { ok: false, reason: "util-linux unshare is not installed" };
  const script = "mount -t tmpfs none /tmp && exec unshare --user " +
    `--map-user=${SANDBOX_UID} --map-group=${SANDBOX_GID} --root=/ --wd=/ -- true`;
  const args = ["--user", "--map-root-user", "--mount", "--pid", "--kill-child", "--ipc"];
  args.push("--uts", "--net", "/bin/sh", "-c", script);
  return await runProbe(unshare, args, { PATH: SETUP_PATH });
}
