import { join } from "node:path";
import { hashBytes } from "../../lib/hashing/mod.ts";
import { canonicaliseTree, scanOutput } from "../../lib/scheduler/_outputs.ts";
import { assertEquals } from "../_assert.ts";

const OUT = "/nix/store/7qvjy94iwq4y6ws362qpd9xh4m1mmrdb-x";

function withDir(fn: (dir: string) => void | Promise<void>): () => Promise<void> {
  return async () => {
    const dir = Deno.makeTempDirSync();
    try {
      await fn(dir);
    } finally {
      Deno.chmodSync(dir, 0o700);
      Deno.removeSync(dir, { recursive: true });
    }
  };
}

Deno.test(
  "canonicaliseTree() sets modes and times, and returns a rejection for a socket",
  withDir((dir) => {
    const out = join(dir, "out");
    Deno.mkdirSync(out);
    Deno.writeTextFileSync(join(out, "data"), "x", { mode: 0o644 });
    Deno.writeTextFileSync(join(out, "tool"), "x", { mode: 0o750 });
    assertEquals(canonicaliseTree(out), undefined);
    assertEquals(Deno.statSync(join(out, "data")).mode! & 0o7777, 0o444);
    assertEquals(Deno.statSync(join(out, "tool")).mode! & 0o7777, 0o555);
    assertEquals(Deno.statSync(out).mtime!.getTime(), 1000);

    const bad = join(dir, "bad");
    Deno.mkdirSync(bad);
    const socket = join(bad, "socket");
    using _listener = Deno.listen({ transport: "unix", path: socket });
    assertEquals(canonicaliseTree(bad), { rejected: `file '${socket}' has an unsupported type` });
  }),
);

Deno.test(
  "scanOutput() returns a rejection for a flat fixed output that is not a plain file",
  withDir((dir) => {
    const fixed = {
      kind: "fixed" as const,
      path: OUT,
      method: "flat" as const,
      hash: hashBytes("sha256", "x"),
    };
    const file = join(dir, "file");
    Deno.writeTextFileSync(file, "x");
    const scanned = scanOutput(file, OUT, { candidates: new Map(), fixed });
    assertEquals("contentHash" in scanned && scanned.contentHash!.equals(fixed.hash), true);

    Deno.chmodSync(file, 0o755);
    assertEquals(scanOutput(file, OUT, { candidates: new Map(), fixed }), {
      rejected: `output path '${OUT}' should be a non-executable regular file since recursive ` +
        "hashing is not enabled (outputHashMode=flat)",
    });
    assertEquals(
      scanOutput(dir, OUT, { candidates: new Map(), fixed: { ...fixed, method: "text" } }),
      {
        rejected: `Output '${OUT}' uses text hashing, which fixed outputs cannot use`,
      },
    );
  }),
);
