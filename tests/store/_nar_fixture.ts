/** A tree with every NAR corner case, and hand-built NARs, for the NAR tests. */

/** Deterministic pseudo-random bytes (xorshift32), so fixtures need no stored data. */
export function patternBytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * Fills `root` (an existing empty directory) with: plain, executable (and group-only executable,
 * which Nix treats as plain), empty and padding-boundary files; files of exactly and just over
 * 1 MiB (the dumper's buffer); dangling, absolute and relative symlinks; an empty directory; and
 * names with spaces, non-ASCII, and pairs that sort differently in UTF-16 and in UTF-8.
 */
export function makeNarFixture(root: string): void {
  const file = (name: string, data: string | Uint8Array, mode = 0o644) => {
    const path = `${root}/${name}`;
    if (typeof data === "string") Deno.writeTextFileSync(path, data);
    else Deno.writeFileSync(path, data);
    Deno.chmodSync(path, mode);
  };
  file("regular.txt", "hello\n");
  file("exec.sh", "#!/bin/sh\necho hi\n", 0o755);
  file("owner-exec-only", "x", 0o700);
  file("group-exec-only", "y", 0o654);
  file("empty", "");
  file("empty-exec", "", 0o755);
  file("eight-bytes", "12345678");
  file("seven", "1234567");
  file("with space", "spaces\n");
  file("ünïcødé", "unicode\n");
  file("\u{1F600}", "emoji\n");
  file("\uFFFD", "replacement character\n");
  file("\uE000", "private use\n");
  file("B", "upper\n");
  file("a", "lower\n");
  file("-dash", "dash\n");
  file("one-mib", patternBytes(1 << 20, 7));
  file("one-mib-plus-one", patternBytes((1 << 20) + 1, 9), 0o755);
  Deno.symlinkSync("does/not/exist", `${root}/dangling`);
  Deno.symlinkSync("/etc", `${root}/absolute`);
  Deno.symlinkSync(".", `${root}/dot-link`);
  Deno.mkdirSync(`${root}/empty-dir`);
  Deno.mkdirSync(`${root}/nested/deeper`, { recursive: true });
  file("nested/deeper/file", "deep\n");
  file("nested/z-last", "z\n");
  Deno.symlinkSync("../regular.txt", `${root}/nested/link-up`);
}

const encoder = new TextEncoder();

/** A NAR string token: u64 length, bytes, zero padding (or `padByte` to corrupt it). */
export function narToken(value: string | Uint8Array, padByte = 0): Uint8Array {
  const bytes = typeof value === "string" ? encoder.encode(value) : value;
  const padded = (bytes.length + 7) & ~7;
  const out = new Uint8Array(8 + padded).fill(padByte, 8 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length, true);
  out.set(bytes, 8);
  return out;
}

/** Concatenates tokens (strings become NAR strings, byte arrays are taken as they are). */
export function narBytes(...parts: (string | Uint8Array)[]): Uint8Array {
  const chunks = parts.map((p) => typeof p === "string" ? narToken(p) : p);
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Tokens of a directory entry `name` holding a regular file with `contents`. */
export function fileEntry(name: string | Uint8Array, contents = "x"): (string | Uint8Array)[] {
  return ["entry", "(", "name", narToken(name), "node", ...regularNode(contents), ")"];
}

/** Tokens of a regular-file node. */
export function regularNode(contents: string): string[] {
  return ["(", "type", "regular", "contents", contents, ")"];
}

/** A whole NAR whose root directory holds `entries` (token lists). */
export function directoryNar(...entries: (string | Uint8Array)[][]): Uint8Array {
  return narBytes("nix-archive-1", "(", "type", "directory", ...entries.flat(), ")");
}

/** A stream of `bytes` in chunks of `size`, to exercise tokens split across chunks. */
export function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(controller) {
      if (off >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(off, off + size));
      off += size;
    },
  });
}

/** Concatenates everything a stream yields. */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
