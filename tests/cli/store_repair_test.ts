import { join } from "node:path";
import { assert, assertEquals } from "../_assert.ts";
import { closureIgnored, withClosure } from "./_closure.ts";

Deno.test({
  name:
    "kiln store verify --repair rebuilds a corrupt built path and a vanished one in the sandbox",
  ignore: closureIgnored,
  fn: () =>
    withClosure(async (_nix, kiln, c) => {
      const y = join(kiln.physical(c.top), "y");
      const good = Deno.readTextFileSync(y);
      Deno.chmodSync(kiln.physical(c.top), 0o755);
      Deno.chmodSync(y, 0o644);
      Deno.writeTextFileSync(y, "corrupt\n");
      Deno.removeSync(kiln.physical(c.leaf));
      const verify = ["store", "verify", "--check-contents"];
      const before = await kiln.run(verify);
      assertEquals(before.code, 1);
      assert(before.stderr.includes(`path '${c.top}' was modified!`), before.stderr);
      assert(before.stderr.includes(`path '${c.leaf}' disappeared, but it still has valid`));
      const r = await kiln.run([...verify, "--repair"]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(Deno.readTextFileSync(y), good);
      const after = await kiln.run(verify);
      assertEquals(after.code, 0, after.stderr);
    }),
});
