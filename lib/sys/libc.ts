/**
 * The libc functions kiln calls directly: the store's (the file walker's I/O, path locks, the
 * hashing thread's reads) and the sandbox's (builders started through `posix_spawn`, their pipes
 * and exit statuses) and the daemon's (a Unix socket whose clients' credentials the kernel
 * tells). The project's one `Deno.dlopen` of libc, loaded once per thread where Deno
 * may load it (on Linux with FFI allowed) and only when first used. Callers fall back to Deno's
 * ops where {@link loadLibc} returns undefined.
 */

const SYMBOLS = {
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  openCreate: { name: "open", parameters: ["buffer", "i32", "u32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  futimens: { parameters: ["i32", "buffer"], result: "i32" },
  utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  fcntlLock: { name: "fcntl", parameters: ["i32", "i32", "buffer"], result: "i32" },
  /** The same, on a thread of its own: for a lock that must be waited for. */
  fcntlLockWait: {
    name: "fcntl",
    parameters: ["i32", "i32", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  __errno_location: { parameters: [], result: "pointer" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  /** On a thread of its own: `read` of a pipe that must be waited for. */
  readWait: {
    name: "read",
    parameters: ["i32", "buffer", "usize"],
    result: "isize",
    nonblocking: true,
  },
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  posix_spawn_file_actions_addchdir_np: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigdefault: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawnattr_setsigmask: { parameters: ["buffer", "buffer"], result: "i32" },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32", nonblocking: true },
  /** waitpid on this thread: for a child known to have exited (a hop to a thread costs more). */
  reap: { name: "waitpid", parameters: ["i32", "buffer", "i32"], result: "i32" },
  waitid: { parameters: ["i32", "u32", "buffer", "i32"], result: "i32", nonblocking: true },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  /** On a thread of its own: waits for a client (`shutdown` of the socket ends the wait). */
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32", nonblocking: true },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  /** On a thread of its own: `send` to a socket that may have to drain first. */
  sendWait: {
    name: "send",
    parameters: ["i32", "buffer", "usize", "i32"],
    result: "isize",
    nonblocking: true,
  },
} as const;

/** `statx`'s "relative to the working directory" and "do not follow a last symlink". */
export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;

/** The loaded library. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;

/** libc, loaded once per thread (loading costs about 1 ms); undefined where it cannot be. */
let libc: Libc | undefined | null = null;

/** libc, or undefined where this process may not call it. */
export function loadLibc(): Libc | undefined {
  if (libc === null) {
    libc = undefined;
    try {
      if (Deno.build.os === "linux") libc = Deno.dlopen("libc.so.6", SYMBOLS);
    } catch {
      // no FFI permission, or no glibc: Deno's ops
    }
  }
  return libc;
}

/** The calling thread's errno, right after a libc call on it failed. */
export function errno(lib: Libc): number {
  const at = lib.symbols.__errno_location();
  return at === null ? 0 : new Deno.UnsafePointerView(at).getInt32();
}

const encoder = new TextEncoder();

/** `path` as a NUL-terminated C string. */
export function cString(path: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(path + "\0");
}
