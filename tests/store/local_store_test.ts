import { removeTree } from "../../lib/store/mod.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../_assert.ts";
import { join } from "node:path";
import {
  hashBytes,
  makeFixedOutputPath,
  makeTextPath,
  renderContentAddress,
} from "../../lib/hashing/mod.ts";
import { hashPath } from "../../lib/store/nar_fs.ts";
import { LocalStore, type StoreLocation } from "../../lib/store/local_store.ts";

const STORE_DIR = "/nix/store";

interface Fixture {
  dir: string;
  location: StoreLocation;
  store: LocalStore;
}

async function withStore(fn: (f: Fixture) => Promise<void> | void): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-store-" });
  const location = {
    storeDir: STORE_DIR,
    storeRoot: join(dir, "root"),
    stateDir: join(dir, "state"),
  };
  const store = LocalStore.open(location);
  try {
    await fn({ dir, location, store });
  } finally {
    store.close();
    removeTree(dir);
  }
}

/** A small tree: a file, an executable, a symlink and an empty directory. */
function makeTree(parent: string): string {
  const tree = join(parent, "tree");
  Deno.mkdirSync(join(tree, "sub/empty"), { recursive: true });
  Deno.writeTextFileSync(join(tree, "file.txt"), "hello\n");
  Deno.writeTextFileSync(join(tree, "sub/run.sh"), "#!/bin/sh\n", { mode: 0o755 });
  Deno.symlinkSync("../file.txt", join(tree, "sub/link"));
  return tree;
}

function storeEntries(f: Fixture): string[] {
  return [...Deno.readDirSync(join(f.location.storeRoot, STORE_DIR))].map((e) => e.name).sort();
}

/** A pid no process can have: Linux hands out pids below pid_max. */
function deadPid(): number {
  return Number(Deno.readTextFileSync("/proc/sys/kernel/pid_max").trim());
}

Deno.test("LocalStore.open() creates the store dir, the database and its schema marker", async () => {
  await withStore((f) => {
    assert(Deno.statSync(join(f.location.storeRoot, STORE_DIR)).isDirectory);
    const db = join(f.location.stateDir, "db");
    assertEquals(Deno.readTextFileSync(join(db, "schema")), "10");
    assert(Deno.statSync(join(db, "db.sqlite")).isFile);
    assert(Deno.statSync(join(db, "kiln")).isFile);
    LocalStore.open(f.location).close(); // reopening an existing store works
  });
});

Deno.test("LocalStore.open() refuses a state dir whose database kiln did not create", () => {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-store-" });
  try {
    Deno.mkdirSync(join(dir, "state/db"), { recursive: true });
    Deno.writeTextFileSync(join(dir, "state/db/db.sqlite"), "");
    const location = {
      storeDir: STORE_DIR,
      storeRoot: join(dir, "root"),
      stateDir: join(dir, "state"),
    };
    assertThrows(() => LocalStore.open(location), TypeError, "database kiln did not create");
    assertThrows(
      () => LocalStore.open({ ...location, stateDir: "/nix/var/nix" }),
      TypeError,
      "State dir '/nix/var/nix' is Nix's own",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("LocalStore.physicalPath() puts logical paths under the store root", async () => {
  await withStore((f) => {
    assertEquals(f.store.physicalPath(`${STORE_DIR}/x`), join(f.location.storeRoot, "nix/store/x"));
  });
  const dir = Deno.makeTempDirSync({ prefix: "kiln-store-" });
  const storeDir = join(dir, "store");
  const store = LocalStore.open({ storeDir, storeRoot: "/", stateDir: join(dir, "state") });
  try {
    assertEquals(store.physicalPath(`${storeDir}/x`), `${storeDir}/x`);
  } finally {
    store.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("LocalStore.addPath() adds a tree read-only with mtime 1 and registers it", async () => {
  await withStore(async (f) => {
    const tree = makeTree(f.dir);
    const nar = hashPath(tree);
    const info = await f.store.addPath(tree);
    const path = makeFixedOutputPath(STORE_DIR, { method: "nar", hash: nar.hash, name: "tree" });
    assertEquals(info.path, path);
    assert(info.narHash.equals(nar.hash));
    assertEquals(info.narSize, nar.size);
    assertEquals(info.references, []);
    assertEquals(info.ca, renderContentAddress("nar", nar.hash));
    assertEquals(f.store.queryPathInfo(path), info);
    const physical = f.store.physicalPath(path);
    for (const [sub, mode] of [["", 0o555], ["file.txt", 0o444], ["sub/run.sh", 0o555]] as const) {
      const st = Deno.statSync(join(physical, sub));
      assertEquals(st.mode! & 0o7777, mode, sub);
      assertEquals(st.mtime?.getTime(), 1000, sub);
    }
    assertEquals(Deno.readLinkSync(join(physical, "sub/link")), "../file.txt");
    assertEquals(storeEntries(f), [path.slice(STORE_DIR.length + 1)]);
  });
});

Deno.test("LocalStore.addPath() with fixed hashes a file flat by default", async () => {
  await withStore(async (f) => {
    const file = join(f.dir, "data");
    Deno.writeTextFileSync(file, "contents");
    const info = await f.store.addPath(file, { fixed: true, algorithm: "sha1", name: "named" });
    const hash = hashBytes("sha1", "contents");
    assertEquals(
      info.path,
      makeFixedOutputPath(STORE_DIR, { method: "flat", hash, name: "named" }),
    );
    assertEquals(info.ca, renderContentAddress("flat", hash));
  });
});

Deno.test("LocalStore.addPath() keeps the valid path when it is added again", async () => {
  await withStore(async (f) => {
    const tree = makeTree(f.dir);
    const first = await f.store.addPath(tree);
    const second = await f.store.addPath(tree);
    assertEquals(second, first);
    assertEquals(storeEntries(f), [first.path.slice(STORE_DIR.length + 1)]);
  });
});

Deno.test("LocalStore.addPath() rejects a bad name before copying anything", async () => {
  await withStore(async (f) => {
    const tree = makeTree(f.dir);
    await assertRejects(
      () => f.store.addPath(tree, { name: "bad name" }),
      SyntaxError,
      "Store path name 'bad name' contains the forbidden character ' '",
    );
    assertEquals(storeEntries(f), []);
  });
});

Deno.test("LocalStore.addPath() removes dead processes' temporaries and keeps live ones", async () => {
  await withStore(async (f) => {
    const storeDir = join(f.location.storeRoot, STORE_DIR);
    const dead = `.kiln-tmp-${deadPid()}-0-tree`;
    const live = `.kiln-tmp-${Deno.pid}-999-other`;
    Deno.mkdirSync(join(storeDir, dead, "half/written"), { recursive: true });
    Deno.chmodSync(join(storeDir, dead, "half"), 0o555);
    Deno.mkdirSync(join(storeDir, live));
    const info = await f.store.addPath(makeTree(f.dir));
    assertEquals(storeEntries(f), [live, info.path.slice(STORE_DIR.length + 1)].sort());
  });
});

Deno.test("LocalStore.addPath() replaces an unregistered leftover at the final path", async () => {
  await withStore(async (f) => {
    const tree = makeTree(f.dir);
    const nar = hashPath(tree);
    const path = makeFixedOutputPath(STORE_DIR, { method: "nar", hash: nar.hash, name: "tree" });
    const physical = f.store.physicalPath(path);
    Deno.mkdirSync(join(physical, "junk"), { recursive: true }); // a crash between rename and register
    Deno.chmodSync(physical, 0o555);
    await f.store.addPath(tree);
    assertEquals(hashPath(physical).hash, nar.hash);
  });
});

Deno.test("LocalStore.addTextToStore() adds a .drv with references and its outputs", async () => {
  await withStore(async (f) => {
    const dep = await f.store.addPath(makeTree(f.dir));
    const contents = `Derive([("out","${STORE_DIR}/x-out","","")],[],["${dep.path}"])`;
    const out = `${STORE_DIR}/00000000000000000000000000000000-out`;
    const outputs = new Map([["out", out]]);
    const path = await f.store.addTextToStore("x.drv", contents, [dep.path], {
      derivationOutputs: outputs,
    });
    const contentsHash = hashBytes("sha256", contents);
    assertEquals(path, makeTextPath(STORE_DIR, contentsHash, "x.drv", [dep.path]));
    assertEquals(Deno.readTextFileSync(f.store.physicalPath(path)), contents);
    const info = f.store.queryPathInfo(path)!;
    assertEquals(info.references, [dep.path]);
    assertEquals(info.ca, renderContentAddress("text", contentsHash));
    assert(info.narHash.equals(hashPath(f.store.physicalPath(path)).hash));
    assertEquals(f.store.queryDerivationOutputs(path), outputs);
    assertEquals(f.store.computeClosure([path]), [dep.path, path].sort());
    const st = Deno.statSync(f.store.physicalPath(path));
    assertEquals([st.mode! & 0o777, st.mtime?.getTime()], [0o444, 1000]);
    assertEquals(await f.store.addTextToStore("x.drv", contents, [dep.path]), path);
  });
});

Deno.test("LocalStore.addTextToStore() refuses a reference that is not valid", async () => {
  await withStore(async (f) => {
    const missing = `${STORE_DIR}/11111111111111111111111111111111-missing`;
    await assertRejects(
      () => f.store.addTextToStore("y.drv", "text", [missing]),
      RangeError,
      `its reference '${missing}' is not valid`,
    );
  });
});

Deno.test("LocalStore.withPathLock() returns the function's result", async () => {
  await withStore(async (f) => {
    const p = `${STORE_DIR}/22222222222222222222222222222222-p`;
    assertEquals(await f.store.withPathLock([p, p], () => Promise.resolve(42)), 42);
    // Nothing per path is left behind: only the lock file all paths share.
    const left = [...Deno.readDirSync(join(f.location.stateDir, "locks"))].map((e) => e.name);
    assertEquals(left, ["paths.lock"]);
  });
});
