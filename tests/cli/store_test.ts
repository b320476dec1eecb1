import { assert, assertEquals, assertMatch } from "../_assert.ts";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { makeFixedOutputPath } from "../../lib/hashing/mod.ts";
import { hashPath } from "../../lib/store/nar_fs.ts";
import { lockPaths } from "../../lib/store/locks.ts";
import { KilnStore } from "../_kiln.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";

/** A tree with the cases NAR cares about: executables, symlinks, empty dirs, name order. */
function makeTree(parent: string, name = "tree"): string {
  const tree = join(parent, name);
  Deno.mkdirSync(join(tree, "sub/empty"), { recursive: true });
  Deno.mkdirSync(join(tree, "empty"));
  Deno.writeTextFileSync(join(tree, "file.txt"), "hello\n");
  Deno.writeTextFileSync(join(tree, "B"), "");
  Deno.writeTextFileSync(join(tree, "a-b"), "x".repeat(1000));
  Deno.writeTextFileSync(join(tree, "a.b"), "y");
  Deno.writeTextFileSync(join(tree, "sub/run.sh"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
  Deno.symlinkSync("../file.txt", join(tree, "sub/link"));
  Deno.symlinkSync("/nonexistent/target", join(tree, "dangling"));
  return tree;
}

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l !== "");
}

/** narHash (SRI) and narSize per path, from Nix 2.8's `nix path-info --json` array. */
async function nixPathInfo(nix: NixSandbox, paths: string[]): Promise<Record<string, unknown>> {
  const out = JSON.parse(await nix.run("nix", ["path-info", "--json", ...paths])) as {
    path: string;
    narHash: string;
    narSize: number;
    ca: string;
  }[];
  return Object.fromEntries(
    out.map((i) => [i.path, { narHash: i.narHash, narSize: i.narSize, ca: i.ca }]),
  );
}

async function kilnPathInfo(kiln: KilnStore, paths: string[]): Promise<Record<string, unknown>> {
  const out = JSON.parse(await kiln.ok(["store", "path-info", "--json", ...paths])) as Record<
    string,
    { narHash: string; narSize: number; ca: string }
  >;
  return Object.fromEntries(
    Object.entries(out).map(([p, i]) => [p, { narHash: i.narHash, narSize: i.narSize, ca: i.ca }]),
  );
}

async function withStores(fn: (nix: NixSandbox, kiln: KilnStore) => Promise<void>): Promise<void> {
  const nix = new NixSandbox();
  const kiln = new KilnStore(nix.storeDir);
  try {
    await fn(nix, kiln);
  } finally {
    kiln.cleanup();
    nix.cleanup();
  }
}

Deno.test({
  name: "kiln store add equals nix-store --add for files, trees and symlinks",
  ignore: !nixAvailable,
  fn: () =>
    withStores(async (nix, kiln) => {
      const src = join(kiln.root, "src");
      const tree = makeTree(src);
      const file = join(tree, "file.txt");
      const exe = join(tree, "sub/run.sh");
      const link = join(tree, "dangling");
      const inputs = [file, exe, tree, link];
      const nixPaths = lines(await nix.run("nix-store", ["--add", ...inputs]));
      const kilnPaths = lines(await kiln.ok(["store", "add", ...inputs]));
      assertEquals(kilnPaths, nixPaths);
      assertEquals(await kilnPathInfo(kiln, kilnPaths), await nixPathInfo(nix, nixPaths));

      // --name NAME gives what nix-store --add gives for a copy named NAME.
      const renamed = makeTree(join(kiln.root, "renamed"), "other-name");
      const named = lines(await kiln.ok(["store", "add", "--name", "other-name", tree]));
      assertEquals(named, lines(await nix.run("nix-store", ["--add", renamed])));

      for (const path of [...kilnPaths, ...named]) {
        for (const entry of walk(kiln.physical(path))) {
          const st = Deno.lstatSync(entry);
          assertEquals(st.mtime?.getTime(), 1000, entry);
          if (!st.isSymlink) assertEquals(st.mode! & 0o222, 0, `${entry} is read-only`);
        }
      }
    }),
});

function* walk(path: string): Generator<string> {
  yield path;
  if (!Deno.lstatSync(path).isDirectory) return;
  for (const e of Deno.readDirSync(path)) yield* walk(join(path, e.name));
}

Deno.test({
  name: "kiln store add --fixed equals nix-store --add-fixed, flat and --recursive",
  ignore: !nixAvailable,
  fn: () =>
    withStores(async (nix, kiln) => {
      const tree = makeTree(join(kiln.root, "src"));
      const flatInputs = [join(tree, "file.txt"), join(tree, "sub/run.sh")];
      const kilnPaths: string[] = [];
      const nixPaths: string[] = [];
      for (const algo of ["md5", "sha1", "sha256", "sha512"]) {
        for (const [flags, inputs] of [[[], flatInputs], [["--recursive"], [tree]]]) {
          const k = lines(await kiln.ok(["store", "add", "--fixed", algo, ...flags, ...inputs]));
          const n = lines(await nix.run("nix-store", ["--add-fixed", ...flags, algo, ...inputs]));
          assertEquals(k, n, `${algo} ${flags.join(" ")}`);
          kilnPaths.push(...k);
          nixPaths.push(...n);
        }
      }
      assertEquals(await kilnPathInfo(kiln, kilnPaths), await nixPathInfo(nix, nixPaths));
    }),
});

Deno.test("kiln store path-info prints aligned text, JSON and closures", async () => {
  const kiln = new KilnStore();
  try {
    const tree = makeTree(join(kiln.root, "src"));
    const [treePath, filePath] = lines(
      await kiln.ok(["store", "add", tree, join(tree, "file.txt")]),
    );
    const text = lines(await kiln.ok(["store", "path-info", treePath, filePath]));
    assertEquals(text.length, 2);
    assertEquals(text[0].indexOf("sha256-"), text[1].indexOf("sha256-"), "columns line up");
    assertMatch(
      text[1],
      /^\/nix\/store\/[0-9a-z]{32}-file\.txt +120 {2}sha256-[A-Za-z0-9+/]{43}=$/,
    );

    const json = JSON.parse(await kiln.ok(["store", "path-info", "--json", treePath]));
    assertEquals(Object.keys(json), [treePath]);
    assertEquals(Object.keys(json[treePath]), [
      "ca",
      "deriver",
      "narHash",
      "narSize",
      "references",
      "registrationTime",
      "signatures",
      "ultimate",
    ]);
    assertEquals(json[treePath].references, []);
    assertEquals(json[treePath].deriver, null);
    assertMatch(json[treePath].ca, /^fixed:r:sha256:[0-9a-z]{52}$/);
    assert(Math.abs(json[treePath].registrationTime - Date.now() / 1000) < 600);

    const closure = await kiln.ok(["store", "path-info", "--recursive", filePath]);
    assertEquals(closure, await kiln.ok(["store", "path-info", filePath]));
  } finally {
    kiln.cleanup();
  }
});

Deno.test("kiln store path-info names a path that is not valid or not a store path", async () => {
  const kiln = new KilnStore();
  try {
    const missing = "/nix/store/00000000000000000000000000000000-missing";
    const r = await kiln.run(["store", "path-info", missing]);
    assertEquals([r.code, r.stdout, r.stderr], [1, "", `error: Path '${missing}' is not valid\n`]);
    const outside = await kiln.run(["store", "path-info", "/etc/hostname"]);
    assertEquals(outside.code, 1);
    assertMatch(outside.stderr, /^error: Path '\/etc\/hostname' is not a store path/);
  } finally {
    kiln.cleanup();
  }
});

Deno.test("kiln store add rejects a bad name with one line naming it", async () => {
  const kiln = new KilnStore();
  try {
    const file = join(kiln.root, "bad name.txt");
    Deno.writeTextFileSync(file, "x");
    for (const args of [["--name", "a/b", file], [file]]) {
      const r = await kiln.run(["store", "add", ...args]);
      const name = args.length > 1 ? "a/b" : "bad name.txt";
      assertEquals([r.code, r.stdout], [1, ""]);
      assertMatch(r.stderr, new RegExp(`^error: Store path name '${name}' [^\\n]*\\n$`));
    }
  } finally {
    kiln.cleanup();
  }
});

Deno.test("kiln store add from concurrent processes gives one path, registered once", async () => {
  const kiln = new KilnStore();
  try {
    const tree = makeTree(join(kiln.root, "src"));
    const others = [1, 2].map((i) => {
      const f = join(kiln.root, `other-${i}`);
      Deno.writeTextFileSync(f, `other ${i}`);
      return f;
    });
    const runs = await Promise.all([
      ...[1, 2, 3, 4].map(() => kiln.run(["store", "add", tree])),
      ...others.map((f) => kiln.run(["store", "add", f])),
    ]);
    for (const r of runs) assertEquals([r.code, r.stderr], [0, ""]);
    const same = new Set(runs.slice(0, 4).map((r) => r.stdout));
    assertEquals(same.size, 1);
    const db = new DatabaseSync(join(kiln.env.KILN_STATE_DIR, "db/db.sqlite"));
    try {
      assertEquals(db.prepare("select count(*) n from ValidPaths").get()?.n, 3);
    } finally {
      db.close();
    }
    const storeDir = kiln.physical("/nix/store");
    assertEquals([...Deno.readDirSync(storeDir)].length, 3, "no temporaries left");
  } finally {
    kiln.cleanup();
  }
});

Deno.test("kiln store add after a kill -9 mid-way registers nothing, then succeeds", async () => {
  const kiln = new KilnStore();
  try {
    const big = join(kiln.root, "big");
    Deno.mkdirSync(big);
    const chunk = new Uint8Array(1 << 20).map((_, i) => i * 7);
    for (let i = 0; i < 8; i++) Deno.writeFileSync(join(big, `f${i}`), chunk.map((b) => b ^ i));
    const expected = makeFixedOutputPath("/nix/store", {
      method: "nar",
      hash: hashPath(big).hash,
      name: "big",
    });
    const storeDir = kiln.physical("/nix/store");
    Deno.mkdirSync(storeDir, { recursive: true });

    // Holding the path's lock keeps kiln from registering it: the kill comes while it copies
    // into its temporary or waits for the lock, whatever the machine's speed.
    const lock = await lockPaths(join(kiln.env.KILN_STATE_DIR, "locks"), [expected]);
    using watcher = Deno.watchFs(storeDir, { recursive: false });
    const main = new URL("../../main.ts", import.meta.url).pathname;
    const proc = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--quiet", main, "store", "add", big],
      env: kiln.env,
      stdout: "null",
      stderr: "null",
    }).spawn();
    const tempMade = (async () => {
      for await (const event of watcher) {
        if (event.kind === "create" && event.paths.some((p) => p.includes("/.kiln-tmp-"))) return;
      }
    })();
    const first = await Promise.race([tempMade.then(() => "temp"), proc.status]);
    assertEquals(first, "temp", "kiln made its temporary before it ended");
    proc.kill("SIGKILL");
    assertEquals((await proc.status).signal, "SIGKILL");
    assert(hasTemp(storeDir), "the half-written copy is still there");
    assertEquals((await kiln.run(["store", "path-info", expected])).code, 1, "nothing registered");
    lock.unlock();
    assertEquals(lines(await kiln.ok(["store", "add", big])), [expected]);
    assertEquals([...Deno.readDirSync(storeDir)].map((e) => e.name), [
      expected.slice("/nix/store/".length),
    ]);
  } finally {
    kiln.cleanup();
  }
});

function hasTemp(storeDir: string): boolean {
  try {
    return [...Deno.readDirSync(storeDir)].some((e) => e.name.startsWith(".kiln-tmp-"));
  } catch {
    return false;
  }
}

Deno.test({
  name: "kiln store refuses a state dir that holds Nix's database",
  ignore: !nixAvailable,
  fn: () =>
    withStores(async (nix, kiln) => {
      const file = join(kiln.root, "f");
      Deno.writeTextFileSync(file, "f");
      await nix.run("nix-store", ["--add", file]);
      kiln.env.KILN_STATE_DIR = nix.env.NIX_STATE_DIR;
      const r = await kiln.run(["store", "add", file]);
      assertEquals(r.code, 1);
      assertMatch(r.stderr, /^error: State dir '.*' holds a database kiln did not create.*\n$/);
    }),
});
