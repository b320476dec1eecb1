import { assertEquals } from "../_assert.ts";
import { join } from "node:path";
import { lockPaths } from "../../lib/store/locks.ts";

const A = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a";
const B = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b";

async function withLockDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-locks-" });
  try {
    await fn(join(dir, "locks"));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** A few round trips through the I/O thread pool, where a waiting lock would finish. */
async function letOthersRun(): Promise<void> {
  for (let i = 0; i < 20; i++) await Deno.stat("/");
}

Deno.test("lockPaths() makes a second locker wait until the first unlocks", async () => {
  await withLockDir(async (dir) => {
    const events: string[] = [];
    const first = await lockPaths(dir, [A]);
    const second = lockPaths(dir, [A]).then((locks) => {
      events.push("second locked");
      return locks;
    });
    await letOthersRun();
    events.push("first unlocks");
    first.unlock();
    (await second).unlock();
    assertEquals(events, ["first unlocks", "second locked"]);
  });
});

Deno.test("lockPaths() does not deadlock on overlapping sets given in different orders", async () => {
  await withLockDir(async (dir) => {
    const order: string[] = [];
    const run = async (name: string, paths: string[]) => {
      using _locks = await lockPaths(dir, paths);
      order.push(name);
      await letOthersRun();
    };
    await Promise.all([run("ab", [A, B]), run("ba", [B, A]), run("b", [B])]);
    assertEquals(order.sort(), ["ab", "b", "ba"]);
  });
});

Deno.test("lockPaths() deletes its lock files on unlock", async () => {
  await withLockDir(async (dir) => {
    const locks = await lockPaths(dir, [A, B, A]);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.lock",
      "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b.lock",
    ]);
    locks.unlock();
    assertEquals([...Deno.readDirSync(dir)], []);
  });
});
