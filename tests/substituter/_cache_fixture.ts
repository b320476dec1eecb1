/** Stores, closures and an in-memory HTTP cache server for the binary cache tests. */

import { removeTree } from "../../lib/store/mod.ts";
import { join } from "node:path";
import { LocalStore } from "../../lib/store/mod.ts";
import { generateKeyPair, type PublicKey, type SecretKey } from "../../lib/substituter/mod.ts";

export const STORE_DIR = "/nix/store";

/** A private store with its temp dir. */
export interface TempStore extends Disposable {
  dir: string;
  store: LocalStore;
  /** Names in the physical store dir (temporaries included), sorted. */
  entries(): string[];
}

export function openTempStore(): TempStore {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-subst-" });
  const store = LocalStore.open({
    storeDir: STORE_DIR,
    storeRoot: join(dir, "root"),
    stateDir: join(dir, "state"),
  });
  return {
    dir,
    store,
    entries: () => [...Deno.readDirSync(store.physicalPath(STORE_DIR))].map((e) => e.name).sort(),
    [Symbol.dispose]() {
      store.close();
      removeTree(dir);
    },
  };
}

/**
 * `n` text paths where path i refers to paths i-1 and i-2 (a closure of them all from the last),
 * plus a directory tree path that the last one refers to too. Returns them, last = the top.
 */
export async function makeClosure(store: LocalStore, n: number, tag = "x"): Promise<string[]> {
  const tree = Deno.makeTempDirSync({ prefix: "kiln-subst-tree-" });
  try {
    Deno.mkdirSync(join(tree, "bin"));
    Deno.writeTextFileSync(join(tree, "bin/run"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
    Deno.writeTextFileSync(join(tree, "data"), "some data\n".repeat(1000));
    Deno.symlinkSync("bin/run", join(tree, "link"));
    const treePath = (await store.addPath(tree, { name: `tree-${tag}` })).path;
    const paths: string[] = [treePath];
    for (let i = 0; i < n - 1; i++) {
      const refs = paths.slice(-2);
      paths.push(
        await store.addTextToStore(`p${i}-${tag}`, `path ${i} ${tag} ${refs.join(" ")}\n`, refs),
      );
    }
    return paths;
  } finally {
    Deno.removeSync(tree, { recursive: true });
  }
}

/** A fresh key pair. */
export function makeKeys(name = "test-cache-1"): { secretKey: SecretKey; publicKey: PublicKey } {
  return generateKeyPair(name);
}

/** An HTTP binary cache in memory on 127.0.0.1: GET, HEAD, PUT; counts requests by method. */
export interface MemoryServer extends AsyncDisposable {
  url: string;
  files: Map<string, Uint8Array>;
  requests: { method: string; path: string }[];
}

export function startMemoryServer(): MemoryServer {
  const files = new Map<string, Uint8Array>();
  const requests: { method: string; path: string }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname.slice(1);
    requests.push({ method: req.method, path });
    if (req.method === "PUT") {
      files.set(path, new Uint8Array(await req.arrayBuffer()));
      return new Response(null, { status: 201 });
    }
    const body = files.get(path);
    if (body === undefined) return new Response("not found", { status: 404 });
    return new Response(req.method === "HEAD" ? null : body.slice());
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    files,
    requests,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}
