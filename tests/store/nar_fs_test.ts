import { assert, assertEquals, assertRejects, assertThrows } from "../_assert.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";
import {
  createHasher,
  type Hash,
  HASH_ALGORITHMS,
  hashBytes,
  NarSyntaxError,
} from "../../lib/hashing/mod.ts";
import {
  dumpPath,
  dumpPathBytes,
  hashPath,
  ingestPath,
  listNar,
  removeTree,
  restoreNar,
} from "../../lib/store/mod.ts";
import {
  chunked,
  directoryNar,
  fileEntry,
  makeNarFixture,
  narBytes,
  narToken,
  patternBytes,
  readAll,
} from "./_nar_fixture.ts";

/** A temp dir holding `tree/` (the fixture) for the test's body; removed afterwards. */
async function withFixture(fn: (dir: string, tree: string) => Promise<void> | void) {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-nar-" });
  try {
    Deno.mkdirSync(`${dir}/tree`);
    makeNarFixture(`${dir}/tree`);
    await fn(dir, `${dir}/tree`);
  } finally {
    removeTree(dir);
  }
}

/** sha256 and size of what `nix-store --dump path` prints, hashed as it streams. */
async function nixDumpHash(path: string): Promise<{ hash: Hash; size: number }> {
  const nix = new NixSandbox();
  try {
    const child = new Deno.Command("nix-store", {
      args: ["--dump", path],
      env: nix.env,
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const hasher = createHasher("sha256");
    let size = 0;
    for await (const chunk of child.stdout) {
      hasher.update(chunk);
      size += chunk.length;
    }
    assert((await child.status).success, "nix-store --dump succeeded");
    return { hash: hasher.digest(), size };
  } finally {
    nix.cleanup();
  }
}

async function nixDump(path: string): Promise<Uint8Array> {
  const nix = new NixSandbox();
  try {
    const out = await nix.runRaw("nix-store", ["--dump", path]);
    assertEquals(out.code, 0, out.stderr);
    return out.bytes;
  } finally {
    nix.cleanup();
  }
}

/** Names in `dir`, to check that a failed restore left nothing behind. */
function namesIn(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test({
  name: "dumpPath() equals nix-store --dump on a tree of corner cases",
  ignore: !nixAvailable,
  fn: () =>
    withFixture(async (_dir, tree) => {
      const expected = await nixDump(tree);
      assertEquals(await readAll(dumpPath(tree)), expected);
      for (const sub of ["regular.txt", "exec.sh", "absolute", "empty-dir", "one-mib-plus-one"]) {
        assertEquals(await readAll(dumpPath(`${tree}/${sub}`)), await nixDump(`${tree}/${sub}`));
      }
    }),
});

Deno.test("hashPath() is the hash and size of dumpPath()'s bytes, for every algorithm", () =>
  withFixture(async (_dir, tree) => {
    const nar = await readAll(dumpPath(tree));
    for (const algorithm of HASH_ALGORITHMS) {
      const { hash, size } = hashPath(tree, algorithm);
      assertEquals(hash.toString(), hashBytes(algorithm, nar).toString());
      assertEquals(size, nar.length);
    }
    for (const sub of ["dangling", "empty", "nested"]) {
      const part = await readAll(dumpPath(`${tree}/${sub}`));
      assertEquals(
        hashPath(`${tree}/${sub}`).hash.toString(),
        hashBytes("sha256", part).toString(),
      );
    }
  }));

Deno.test("dumpPathBytes() gives dumpPath()'s bytes, whatever size it is told", () =>
  withFixture(async (_dir, tree) => {
    const nar = await readAll(dumpPath(tree));
    for (const size of [nar.length, 0, nar.length - 1, nar.length + 100, 3 << 20]) {
      assertEquals(dumpPathBytes(tree, size), nar, `told ${size}`);
      // Into a used buffer: filled over, where it is large enough.
      const used = new Uint8Array(Math.max(size, 8192) + 5).fill(0xaa).buffer;
      const into = dumpPathBytes(tree, size, used);
      assertEquals(into, nar, `told ${size}, into a buffer`);
      if (size === nar.length) assert(into.buffer === used, "the buffer given is used");
    }
  }));

Deno.test("restoreNar() reports a NAR hash it is given instead of hashing", () =>
  withFixture(async (dir, tree) => {
    const nar = await readAll(dumpPath(tree));
    const given = hashBytes("sha256", "not the NAR");
    const result = await restoreNar(chunked(nar, 5000), `${dir}/restored`, { narHash: given });
    assertEquals(result, { narHash: given, narSize: nar.length });
    assertEquals(await readAll(dumpPath(`${dir}/restored`)), nar);
  }));

Deno.test("hashPath() agrees with dumpPath() around the hashing thread's thresholds", () =>
  withFixture(async (dir) => {
    const block = patternBytes(1 << 20, 3);
    for (const mib of [3, 5, 40]) {
      const root = `${dir}/mib-${mib}`;
      Deno.mkdirSync(root);
      {
        using f = Deno.openSync(`${root}/data`, { write: true, create: true });
        for (let i = 0; i < mib; i++) f.writeSync(block);
      }
      Deno.writeTextFileSync(`${root}/small`, "small\n");
      const nar = await readAll(dumpPath(root));
      assertEquals(hashPath(root).hash.toString(), hashBytes("sha256", nar).toString());
    }
  }));

Deno.test("hashPath() and ingestPath() agree with dumpPath() when the thread reads small files", () =>
  withFixture(async (dir) => {
    // The large file starts the thread; the small ones after it are read by whichever thread
    // has less to do, several to a slot, among directories, symlinks and empty files.
    const root = `${dir}/mixed`;
    Deno.mkdirSync(root);
    Deno.writeFileSync(`${root}/a-large`, patternBytes(12 << 20, 5));
    for (let d = 0; d < 20; d++) {
      const sub = `${root}/d${d}`;
      Deno.mkdirSync(sub);
      for (let f = 0; f < 150; f++) {
        Deno.writeFileSync(`${sub}/f${f}`, patternBytes((f * 977 + d * 131) % 70_000, f), {
          mode: f % 7 === 0 ? 0o755 : 0o644,
        });
      }
      Deno.symlinkSync("f1", `${sub}/link`);
      Deno.writeFileSync(`${sub}/z-empty`, new Uint8Array());
      // Under a slot, but more than is left of one that already holds other files.
      Deno.writeFileSync(`${sub}/z-nearly-a-slot`, patternBytes(1_000_000 - d * 1000, d));
    }
    const nar = await readAll(dumpPath(root));
    const { hash, size } = hashPath(root);
    assertEquals(hash.toString(), hashBytes("sha256", nar).toString());
    assertEquals(size, nar.length);
    // Copying hands no file over: the thread's buffers stay whole slots.
    const copied = ingestPath(root, `${dir}/copy`, { method: "nar", algorithm: "sha256" });
    assertEquals(copied.narHash.toString(), hash.toString());
    assertEquals(await readAll(dumpPath(`${dir}/copy`)), nar);
  }));

Deno.test({
  name: "dumpPath() and hashPath() equal nix-store --dump with a file over 100 MB",
  ignore: !nixAvailable,
  fn: () =>
    withFixture(async (dir) => {
      const root = `${dir}/big`;
      Deno.mkdirSync(root);
      const size = 120_000_000 + 5;
      {
        using f = Deno.openSync(`${root}/sparse.bin`, { write: true, create: true, mode: 0o755 });
        f.truncateSync(size); // sparse: fast to make, read back as zeros
        for (const at of [0, 50_000_000, size - 4096]) {
          f.seekSync(at, Deno.SeekMode.Start);
          f.writeSync(patternBytes(4096, at + 1));
        }
      }
      Deno.writeTextFileSync(`${root}/after`, "after\n");
      const expected = await nixDumpHash(root);
      const hasher = createHasher("sha256");
      let streamed = 0;
      for await (const chunk of dumpPath(root)) {
        hasher.update(chunk);
        streamed += chunk.length;
      }
      assertEquals({ hash: hasher.digest().toString(), size: streamed }, {
        hash: expected.hash.toString(),
        size: expected.size,
      });
      const { hash, size: narSize } = hashPath(root);
      assertEquals({ hash: hash.toString(), size: narSize }, {
        hash: expected.hash.toString(),
        size: expected.size,
      });
    }),
});

Deno.test("hashPath() rejects a socket, naming it", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-nar-" });
  const listener = Deno.listen({ transport: "unix", path: `${dir}/sock` });
  try {
    assertThrows(() => hashPath(dir), TypeError, `File '${dir}/sock' is a socket`);
    assertThrows(
      () => ingestPath(dir, `${dir}-copy`, { method: "nar", algorithm: "sha256" }),
      TypeError,
      "is a socket",
    );
    assertThrows(() => Deno.lstatSync(`${dir}-copy`), Deno.errors.NotFound);
    await assertRejects(() => readAll(dumpPath(`${dir}/sock`)), TypeError, "is a socket");
  } finally {
    listener.close();
    removeTree(dir);
  }
});

Deno.test("hashPath() and ingestPath() name a file name that is not UTF-8", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-nar-" });
  try {
    Deno.mkdirSync(`${dir}/d`);
    // Latin-1 "café": Deno cannot name such a file, a shell can.
    const made = await new Deno.Command("sh", {
      args: ["-c", `printf x > "$1/d/$(printf 'caf\\351')"`, "sh", dir],
    }).output();
    assert(made.success);
    const message = `File name 'caf\\xe9' in '${dir}/d' is not valid UTF-8`;
    assertThrows(() => hashPath(dir), RangeError, message);
    assertThrows(
      () => ingestPath(dir, `${dir}-copy`, { method: "nar", algorithm: "sha256" }),
      RangeError,
      message,
    );
    assertThrows(() => Deno.lstatSync(`${dir}-copy`), Deno.errors.NotFound);
  } finally {
    removeTree(dir);
  }
});

Deno.test("restoreNar() round-trips dumpPath() and reports the NAR's hash and size", () =>
  withFixture(async (dir, tree) => {
    const nar = await readAll(dumpPath(tree));
    const result = await restoreNar(chunked(nar, 3000), `${dir}/restored`);
    assertEquals(result.narSize, nar.length);
    assertEquals(result.narHash.toString(), hashBytes("sha256", nar).toString());
    assertEquals(await readAll(dumpPath(`${dir}/restored`)), nar);
    assertEquals(Deno.readLinkSync(`${dir}/restored/dangling`), "does/not/exist");
    assertEquals(Deno.readLinkSync(`${dir}/restored/absolute`), "/etc");
    assertEquals(namesIn(dir), ["restored", "tree"]);
  }));

/** Every object under `root` is read-only as Nix leaves it, with mtime 1 (symlinks included). */
function assertCanonical(root: string): void {
  const check = (path: string) => {
    const info = Deno.lstatSync(path);
    assertEquals(info.mtime?.getTime(), 1000, `mtime of ${path}`);
    if (info.isSymlink) return;
    const mode = info.mode! & 0o7777;
    if (info.isDirectory) {
      assertEquals(mode, 0o555, `mode of ${path}`);
      for (const e of Deno.readDirSync(path)) check(`${path}/${e.name}`);
    } else {
      assert(mode === 0o444 || mode === 0o555, `mode ${mode.toString(8)} of ${path}`);
    }
  };
  check(root);
  assertEquals(Deno.lstatSync(`${root}/exec.sh`).mode! & 0o777, 0o555);
  assertEquals(Deno.lstatSync(`${root}/group-exec-only`).mode! & 0o777, 0o444);
}

Deno.test("restoreNar() canonicalises modes and mtimes when asked", () =>
  withFixture(async (dir, tree) => {
    const nar = await readAll(dumpPath(tree));
    await restoreNar(chunked(nar, 1 << 16), `${dir}/out`, { canonicalise: true });
    assertCanonical(`${dir}/out`);
    assertEquals(await readAll(dumpPath(`${dir}/out`)), nar);
  }));

Deno.test("restoreNar() restores a lone file with its executable bit", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-nar-" });
  try {
    const nar = narBytes("nix-archive-1", "(", "type", "regular", "executable", "", "contents");
    await restoreNar(chunked(narBytes(nar, "#!/bin/sh\n", ")"), 5), `${dir}/f`);
    assertEquals(Deno.readTextFileSync(`${dir}/f`), "#!/bin/sh\n");
    assert((Deno.lstatSync(`${dir}/f`).mode! & 0o100) !== 0);
  } finally {
    removeTree(dir);
  }
});

/** Bad NARs for restore: each must fail and leave nothing in the parent directory. */
const BAD_RESTORES: [string, Uint8Array, string][] = [
  ["garbage", patternBytes(1000), "not a Nix archive"],
  ["a truncated NAR", directoryNar(fileEntry("a"), fileEntry("b")).slice(0, 300), "truncated"],
  ["'..' as a name", directoryNar(fileEntry("..")), "invalid file name '..'"],
  ["'.' as a name", directoryNar(fileEntry(".")), "invalid file name '.'"],
  ["a name with '/'", directoryNar(fileEntry("a"), fileEntry("x/y")), "invalid file name 'x/y'"],
  ["a name with NUL", directoryNar(fileEntry("a\0")), "invalid file name"],
  ["an empty name", directoryNar(fileEntry("")), "invalid file name ''"],
  ["duplicate names", directoryNar(fileEntry("a"), fileEntry("a")), "duplicate entry 'a'"],
  ["unsorted names", directoryNar(fileEntry("b"), fileEntry("a")), "not sorted"],
  [
    "bad padding",
    directoryNar(["entry", "(", "name", "a", "node", "(", "type", "regular", "contents"], [
      narToken("abc", 9),
      ")",
      ")",
    ]),
    "non-zero padding",
  ],
  ["trailing data", narBytes(directoryNar(fileEntry("a")), "x"), "Trailing data"],
];

for (const [what, nar, message] of BAD_RESTORES) {
  Deno.test(`restoreNar() rejects ${what} and leaves nothing behind`, async () => {
    const dir = Deno.makeTempDirSync({ prefix: "kiln-nar-" });
    try {
      for (const inPlace of [false, true]) {
        const e = await assertRejects(
          () => restoreNar(chunked(nar, 16), `${dir}/out`, { inPlace }),
          NarSyntaxError,
          message,
        );
        assert(!e.message.includes("\n"));
        assertEquals(namesIn(dir), [], `inPlace: ${inPlace}`);
      }
    } finally {
      removeTree(dir);
    }
  });
}

Deno.test("restoreNar() never writes through a symlink it restored", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-nar-" });
  try {
    Deno.mkdirSync(`${dir}/outside`);
    const link = ["entry", "(", "name", "x", "node", "(", "type", "symlink", "target"];
    const escape = [...link, `${dir}/outside`, ")", ")"];
    const intoLink = ["entry", "(", "name", "x", "node", "(", "type", "directory"];
    const attempts = [
      directoryNar(escape, fileEntry("x/pwned")),
      directoryNar(escape, [...intoLink, ...fileEntry("pwned"), ")", ")"]),
    ];
    for (const nar of attempts) {
      await assertRejects(() => restoreNar(chunked(nar, 64), `${dir}/out`), NarSyntaxError);
      assertEquals(namesIn(dir), ["outside"]);
      assertEquals(namesIn(`${dir}/outside`), []);
    }
  } finally {
    removeTree(dir);
  }
});

Deno.test("restoreNar() refuses an existing destination", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-nar-" });
  try {
    Deno.mkdirSync(`${dir}/out`);
    await assertRejects(
      () => restoreNar(chunked(directoryNar(), 8), `${dir}/out`),
      Deno.errors.AlreadyExists,
      `Destination '${dir}/out' already exists`,
    );
    assertEquals(namesIn(dir), ["out"]);
  } finally {
    removeTree(dir);
  }
});

Deno.test("ingestPath() copies a tree in one pass with its NAR hash", () =>
  withFixture(async (dir, tree) => {
    const nar = await readAll(dumpPath(tree));
    const r = ingestPath(tree, `${dir}/copy`, { method: "nar", algorithm: "sha256" });
    assertEquals(r.narHash.toString(), hashBytes("sha256", nar).toString());
    assertEquals(r.hash.toString(), r.narHash.toString());
    assertEquals(r.narSize, nar.length);
    assertEquals(await readAll(dumpPath(`${dir}/copy`)), nar);
    const sha1 = ingestPath(tree, `${dir}/copy-sha1`, { method: "nar", algorithm: "sha1" });
    assertEquals(sha1.hash.toString(), hashBytes("sha1", nar).toString());
    assertEquals(sha1.narHash.toString(), r.narHash.toString());
  }));

Deno.test("ingestPath() canonicalises the copy when asked", () =>
  withFixture(async (dir, tree) => {
    ingestPath(tree, `${dir}/copy`, { method: "nar", algorithm: "sha256", canonicalise: true });
    assertCanonical(`${dir}/copy`);
    assertEquals(await readAll(dumpPath(`${dir}/copy`)), await readAll(dumpPath(tree)));
  }));

Deno.test("ingestPath() hashes a file's contents with method flat", () =>
  withFixture((dir, tree) => {
    for (const name of ["regular.txt", "one-mib-plus-one", "empty"]) {
      const data = Deno.readFileSync(`${tree}/${name}`);
      for (const algorithm of ["md5", "sha256"] as const) {
        const dest = `${dir}/${name}-${algorithm}`;
        const r = ingestPath(`${tree}/${name}`, dest, { method: "flat", algorithm });
        assertEquals(r.hash.toString(), hashBytes(algorithm, data).toString());
        assertEquals(r.narHash.toString(), hashPath(`${tree}/${name}`).hash.toString());
        assertEquals(Deno.readFileSync(dest), data);
      }
    }
    assertThrows(
      () => ingestPath(tree, `${dir}/flat-dir`, { method: "flat", algorithm: "sha256" }),
      TypeError,
      "not a regular file",
    );
    assertThrows(
      () => ingestPath(tree, `${dir}/tree`, { method: "nar", algorithm: "sha256" }),
      Deno.errors.AlreadyExists,
    );
  }));

Deno.test("listNar() yields every node in NAR order", () =>
  withFixture(async (_dir, tree) => {
    const nodes = [];
    for await (const n of listNar(dumpPath(`${tree}/nested`))) nodes.push(n);
    assertEquals(nodes.map((n) => n.path), ["", "deeper", "deeper/file", "link-up", "z-last"]);
    assertEquals(nodes[3], { type: "symlink", path: "link-up", target: "../regular.txt" });
  }));

Deno.test("hashPath() canonicalises in place and shows onChunk every NAR byte", () =>
  withFixture(async (_dir, tree) => {
    Deno.writeFileSync(`${tree}/big`, patternBytes(6 << 20)); // past the thread's start
    const withBig = await readAll(dumpPath(tree));
    const seen: Uint8Array[] = [];
    const r = hashPath(tree, "sha256", {
      canonicalise: true,
      onChunk: (c) => seen.push(c.slice()),
    });
    assertEquals(narBytes(...seen), withBig);
    assertEquals(r.hash.toString(), hashBytes("sha256", withBig).toString());
    assertCanonical(tree);
    assertEquals(await readAll(dumpPath(tree)), withBig);
  }));
