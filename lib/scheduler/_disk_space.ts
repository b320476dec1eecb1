/**
 * Nix's guess that a failed build ran out of disk space: it cannot know whether the builder got
 * ENOSPC, so it looks whether the store's or the build dir's file system is (nearly) full now
 * (`cleanupDecideWhetherDiskFull` in Nix's local-derivation-goal.cc).
 */

/** Nix's threshold: less than 8 MiB available (`f_bavail * f_bsize`) is full. */
const DISK_FULL_BYTES = 8 * 1024 * 1024;

/** `struct statvfs` on 64-bit Linux: f_bsize at 0, f_bavail at 32, 112 bytes in all. */
const STATVFS_SIZE = 112;
const F_BSIZE = 0;
const F_BAVAIL = 32;

const SYMBOLS = {
  statvfs: { parameters: ["buffer", "buffer"], result: "i32" },
} as const;

let libc: Deno.DynamicLibrary<typeof SYMBOLS> | undefined | null = null;

/** Bytes an unprivileged user may still write on the file system of `path`; undefined if unknown. */
export function availableBytes(path: string): number | undefined {
  if (libc === null) {
    libc = undefined;
    try {
      if (Deno.build.os === "linux") libc = Deno.dlopen("libc.so.6", SYMBOLS);
    } catch {
      // no FFI permission, or no glibc: unknown, as where Nix has no statvfs
    }
  }
  if (libc === undefined) return undefined;
  const buffer = new Uint8Array(STATVFS_SIZE);
  if (libc.symbols.statvfs(new TextEncoder().encode(path + "\0"), buffer) !== 0) return undefined;
  const view = new DataView(buffer.buffer);
  const bsize = view.getBigUint64(F_BSIZE, true);
  return Number(view.getBigUint64(F_BAVAIL, true) * bsize);
}

/** Whether any of `paths` is on a file system with less than {@link DISK_FULL_BYTES} available. */
export function isDiskFull(paths: readonly string[]): boolean {
  return paths.some((path) => (availableBytes(path) ?? Infinity) < DISK_FULL_BYTES);
}
