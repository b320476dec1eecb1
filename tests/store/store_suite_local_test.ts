/** The `Store` suite against the local store, on a real temporary store dir and database. */

import { join } from "node:path";
import { LocalStore, removeTree } from "../../lib/store/mod.ts";
import { storeSuite } from "./_store_suite.ts";

storeSuite("LocalStore", (storeDir) => {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-store-suite-" });
  const store = LocalStore.open({
    storeDir,
    storeRoot: join(dir, "root"),
    stateDir: join(dir, "state"),
  });
  return Promise.resolve({
    store,
    [Symbol.asyncDispose]: () => {
      store.close();
      removeTree(dir);
      return Promise.resolve();
    },
  });
});
