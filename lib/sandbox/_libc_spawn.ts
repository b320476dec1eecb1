/**
 * Starting a builder through glibc's `posix_spawn` (FFI) in one exec: in a new session
 * (`POSIX_SPAWN_SETSID`), stdout and stderr both on one pipe (in order, as Nix's log pipe),
 * stdin `/dev/null`, every signal back to its default disposition and none blocked, and exactly
 * the given environment whatever its names. Deno's own spawn needs util-linux `setsid` (one exec
 * more) or `detached` (a fork of this whole process) for the session, and cannot give two fds one
 * pipe. Core dumps are turned off once for this process (soft `RLIMIT_CORE` 0, hard limit kept),
 * which every builder inherits. `posix_spawn` itself, the pipe and the exit status run on Deno's
 * blocking threads (nonblocking FFI calls), so neither a starting nor a running builder blocks the
 * event loop: `posix_spawn` suspends its calling thread until the child has exec'd (it uses
 * `vfork`), ~0.5 ms per builder that the event loop spends on other goals instead.
 */

import { encodeNixString } from "../hashing/mod.ts";
import { type Libc, loadLibc } from "../sys/mod.ts";
import { InternalError } from "../sys/mod.ts";

/** How the builder ended, as Deno reports it: an exit code, or the signal's name. */
export interface LibcStatus {
  code: number | null;
  signal: string | null;
}

/** A builder started by {@link libcSpawn}. */
export interface LibcChild {
  pid: number;
  /** stdout and stderr together. */
  output: ReadableStream<Uint8Array>;
  status: Promise<LibcStatus>;
  /** With `input`: ends the child's stdin (so does this process's exit, however it comes). */
  closeInput?: () => void;
}

const O_CLOEXEC = 0o2000000;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
const RLIMIT_CORE = 4;
/** Larger than glibc's posix_spawn_file_actions_t (80 bytes) and posix_spawnattr_t (336). */
const OPAQUE_BYTES = 1024;
/** sigset_t: 1024 bits. */
const ALL_SIGNALS = new Uint8Array(128).fill(0xff);
const NO_SIGNALS = new Uint8Array(128);
const READ_BYTES = 65536;
const DEV_NULL = cString("/dev/null");

/** Linux signal numbers 1-31 (x86-64 and arm64 alike). */
const SIGNAL_NAMES = [
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
  "SIGSTKFLT",
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGWINCH",
  "SIGIO",
  "SIGPWR",
  "SIGSYS",
]; // deno-fmt-ignore

/** Set once core dumps are off: undefined until tried, then libc or undefined where it failed. */
let spawnLibc: Libc | undefined | null = null;

/** libc, with core dumps turned off once; undefined where FFI or glibc is missing. */
function loadSpawnLibc(): Libc | undefined {
  if (spawnLibc !== null) return spawnLibc;
  spawnLibc = undefined;
  const lib = loadLibc();
  if (lib === undefined) return undefined;
  const limits = new BigUint64Array(2);
  if (lib.symbols.getrlimit(RLIMIT_CORE, limits) === 0) {
    limits[0] = 0n;
    if (lib.symbols.setrlimit(RLIMIT_CORE, limits) === 0) spawnLibc = lib;
  }
  return spawnLibc;
}

/** Whether {@link libcSpawn} works in this process. */
export function libcSpawnAvailable(): boolean {
  return loadSpawnLibc() !== undefined;
}

/**
 * Starts `argv[0]` (an absolute path: no PATH search) with `argv` (its first element cut to the
 * base name), exactly `env`, in `cwd`; stdin is `/dev/null`, or with `input` a pipe from here.
 * Rejects with a Deno error (NotFound, PermissionDenied, ...) when it cannot be started.
 */
export async function libcSpawn(
  argv: readonly string[],
  env: Record<string, string>,
  cwd: string,
  options: { input?: boolean } = {},
): Promise<LibcChild> {
  const lib = loadSpawnLibc();
  if (lib === undefined) throw new InternalError("libcSpawn() is not available here");
  const s = lib.symbols;
  const cwdC = cString(cwd);
  const program = cString(argv[0]);
  // As Nix does, the program sees its base name as argv[0].
  const args = cStrings([argv[0].slice(argv[0].lastIndexOf("/") + 1), ...argv.slice(1)]);
  const envs = cStrings(Object.entries(env).map(([k, v]) => `${k}=${v}`));
  const fds = new Int32Array(2);
  if (s.pipe2(fds, O_CLOEXEC) !== 0) throw new Deno.errors.Interrupted("Cannot create a pipe");
  const [readEnd, writeEnd] = fds;
  const input = options.input ? new Int32Array(2) : undefined;
  if (input && s.pipe2(input, O_CLOEXEC) !== 0) {
    s.close(readEnd);
    s.close(writeEnd);
    throw new Deno.errors.Interrupted("Cannot create a pipe");
  }
  const actions = new Uint8Array(OPAQUE_BYTES);
  const attr = new Uint8Array(OPAQUE_BYTES);
  const pid = new Int32Array(1);
  let error: number;
  s.posix_spawn_file_actions_init(actions);
  s.posix_spawnattr_init(attr);
  try {
    if (input) s.posix_spawn_file_actions_adddup2(actions, input[0], 0);
    else s.posix_spawn_file_actions_addopen(actions, 0, DEV_NULL, 0, 0);
    s.posix_spawn_file_actions_adddup2(actions, writeEnd, 1);
    s.posix_spawn_file_actions_adddup2(actions, writeEnd, 2);
    s.posix_spawn_file_actions_addchdir_np(actions, cwdC);
    s.posix_spawnattr_setsigdefault(attr, ALL_SIGNALS);
    s.posix_spawnattr_setsigmask(attr, NO_SIGNALS);
    s.posix_spawnattr_setflags(
      attr,
      POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID,
    );
    // Every buffer the call reads is referenced until it returns (here and in `finally`).
    error = await s.posix_spawn(pid, program, actions, attr, args.pointers, envs.pointers);
    void [args.buffer, envs.buffer, cwdC];
  } finally {
    s.posix_spawn_file_actions_destroy(actions);
    s.posix_spawnattr_destroy(attr);
    s.close(writeEnd);
    if (input) s.close(input[0]);
  }
  if (error !== 0) {
    s.close(readEnd);
    if (input) s.close(input[1]);
    throw spawnError(argv[0], cwd, error);
  }
  const child: LibcChild = {
    pid: pid[0],
    output: readPipe(lib, readEnd),
    status: waitFor(lib, pid[0]),
  };
  if (input) {
    let open = true;
    child.closeInput = () => {
      if (open) s.close(input[1]);
      open = false;
    };
  }
  return child;
}

/** The pipe as a stream; the fd is closed at EOF, or on cancel once no read is under way. */
function readPipe(lib: Libc, fd: number): ReadableStream<Uint8Array> {
  const buffer = new Uint8Array(READ_BYTES);
  let open = true;
  let cancelled = false;
  let reading: Promise<unknown> | undefined;
  const close = () => {
    if (open) lib.symbols.close(fd);
    open = false;
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const pending = lib.symbols.readWait(fd, buffer, BigInt(READ_BYTES));
      reading = pending;
      const n = Number(await pending);
      reading = undefined;
      if (cancelled) return;
      if (n > 0) return controller.enqueue(buffer.slice(0, n));
      close();
      if (n === 0) controller.close();
      else controller.error(new Deno.errors.Interrupted("Reading the builder's output failed"));
    },
    async cancel() {
      cancelled = true;
      // Closing the fd while a thread still reads it could let that read hit a reused fd.
      if (reading !== undefined) await reading.catch(() => {});
      close();
    },
  }, { highWaterMark: 0 });
}

const P_PID = 1;
const WEXITED = 4;
const WNOWAIT = 0x01000000;
const WNOHANG = 1;
/** sizeof(siginfo_t). */
const SIGINFO_BYTES = 128;

/**
 * Waits for the builder to exit, kills what is left of its process group, then reaps it. The kill
 * comes while the builder is a zombie: until it is reaped its pid (and so its group id) cannot be
 * reused, so `kill(-pid)` cannot reach an unrelated process group that took the number.
 */
async function waitFor(lib: Libc, pid: number): Promise<LibcStatus> {
  const status = new Int32Array(1);
  let reaped = false;
  if (
    await lib.symbols.waitid(P_PID, pid, new Uint8Array(SIGINFO_BYTES), WEXITED | WNOWAIT) === 0
  ) {
    try {
      Deno.kill(-pid, "SIGKILL");
    } catch {
      // the group is already empty but for the zombie
    }
    reaped = lib.symbols.reap(pid, status, WNOHANG) === pid;
  }
  for (let failures = 0; !reaped && (await lib.symbols.waitpid(pid, status, 0)) !== pid;) {
    // EINTR cannot happen (Deno's handlers restart) but is harmless; anything else is lost.
    if (++failures === 3) throw new InternalError(`cannot wait for builder ${pid}`);
  }
  const raw = status[0];
  const signal = raw & 0x7f;
  if (signal === 0) return { code: (raw >> 8) & 0xff, signal: null };
  return { code: null, signal: SIGNAL_NAMES[signal - 1] ?? `SIG${signal}` };
}

function spawnError(program: string, cwd: string, errno: number): Error {
  const what = `Failed to spawn '${program}'`;
  switch (errno) {
    case 2:
      return new Deno.errors.NotFound(`${what}: no such file or directory (or cwd '${cwd}')`);
    case 13:
      return new Deno.errors.PermissionDenied(`${what}: permission denied`);
    default:
      return new Error(`${what}: error ${errno}`);
  }
}

/** `text` as a NUL-terminated C string; a derivation's bytes that are not UTF-8 come back as such. */
function cString(text: string): Uint8Array<ArrayBuffer> {
  return cStrings([text]).buffer;
}

/**
 * `strings` as C strings packed in one buffer (bytes that are not UTF-8 come back as such), and
 * a NULL-terminated array of pointers to them, valid while `buffer` lives: one encoding and one
 * pointer lookup for a builder's whole environment.
 */
function cStrings(strings: readonly string[]): {
  buffer: Uint8Array<ArrayBuffer>;
  pointers: BigUint64Array<ArrayBuffer>;
} {
  for (const text of strings) {
    if (text.includes("\0")) throw new TypeError(`Argument or variable '${text}' contains NUL`);
  }
  const buffer = encodeNixString(strings.join("\0") + "\0");
  const pointers = new BigUint64Array(strings.length + 1);
  const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
  for (let i = 0, start = 0; i < strings.length; i++, start = buffer.indexOf(0, start) + 1) {
    pointers[i] = base + BigInt(start);
  }
  return { buffer, pointers };
}
