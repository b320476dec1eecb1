import { assertEquals } from "../_assert.ts";
import { lockWaiters, waitFor } from "../_process.ts";
import { join } from "node:path";
import { type LockKind, lockPaths } from "../../lib/store/locks.ts";

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

for (const kind of ["ranges", "files"] satisfies LockKind[]) {
  Deno.test(`lockPaths() (${kind}) makes a second locker wait until the first unlocks`, async () => {
    await withLockDir(async (dir) => {
      const events: string[] = [];
      const first = await lockPaths(dir, [A], kind);
      const second = lockPaths(dir, [A], kind).then((locks) => {
        events.push("second locked");
        return locks;
      });
      const other = await lockPaths(dir, [B], kind); // another path is free meanwhile
      other.unlock();
      await waitFor("the second locker to wait", () => lockWaiters(dir) === 1);
      events.push("first unlocks");
      first.unlock();
      (await second).unlock();
      assertEquals(events, ["first unlocks", "second locked"]);
    });
  });

  Deno.test(`lockPaths() (${kind}) does not deadlock on overlapping sets in any order`, async () => {
    await withLockDir(async (dir) => {
      const order: string[] = [];
      const run = async (name: string, paths: string[]) => {
        using _locks = await lockPaths(dir, paths, kind);
        order.push(name);
        await letOthersRun();
      };
      await Promise.all([run("ab", [A, B]), run("ba", [B, A]), run("b", [B])]);
      assertEquals(order.sort(), ["ab", "b", "ba"]);
    });
  });
}

Deno.test("lockPaths() leaves no file per path behind", async () => {
  await withLockDir(async (dir) => {
    const ranges = await lockPaths(dir, [A, B, A], "ranges");
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["paths.lock"]);
    ranges.unlock();
    const files = await lockPaths(dir, [A, B, A], "files");
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.lock",
      "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b.lock",
      "paths.lock",
    ]);
    files.unlock();
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["paths.lock"]);
  });
});

Deno.test("lockPaths() (ranges) excludes another process holding the same path", async () => {
  await withLockDir(async (dir) => {
    const url = new URL("../../lib/store/locks.ts", import.meta.url).href;
    // The other process holds the lock until its stdin ends.
    const script = `import { lockPaths } from "${url}";
      const locks = await lockPaths(${JSON.stringify(dir)}, [${JSON.stringify(A)}], "ranges");
      console.log("locked"); for await (const _ of Deno.stdin.readable); locks.unlock();`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    assertEquals((await reader.read()).value?.trim(), "locked");
    const events: string[] = [];
    const mine = lockPaths(dir, [A], "ranges").then((locks) => {
      events.push("mine locked");
      return locks;
    });
    await waitFor("this process to wait for the other's lock", () => lockWaiters(dir) === 1);
    events.push("other unlocks");
    await child.stdin.close();
    (await mine).unlock();
    await reader.cancel();
    assertEquals((await child.status).code, 0);
    assertEquals(events, ["other unlocks", "mine locked"]);
  });
});
