import { assert, assertEquals } from "../_assert.ts";
import { BuildDirs } from "../../lib/scheduler/mod.ts";

/** Runs `fn` with a fresh temporary directory for build dirs and the run's background set. */
async function withTemp(
  fn: (temp: string, background: Set<Promise<void>>) => Promise<void>,
): Promise<void> {
  const temp = Deno.makeTempDirSync({ prefix: "kiln-build-dirs-" });
  try {
    await fn(temp, new Set());
  } finally {
    Deno.removeSync(temp, { recursive: true });
  }
}

const names = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();

Deno.test("BuildDirs reuses an emptied build dir under the next build's name", () =>
  withTemp(async (temp, background) => {
    const dirs = new BuildDirs(temp, background);
    const first = await dirs.take("a");
    assert(first.startsWith(`${temp}/nix-build-a.drv-`), first);
    Deno.mkdirSync(`${first}/sub/read-only`, { recursive: true });
    Deno.writeTextFileSync(`${first}/sub/read-only/file`, "x");
    Deno.chmodSync(`${first}/sub/read-only`, 0o555);
    Deno.chmodSync(first, 0o777);
    const { ino } = Deno.statSync(first);
    dirs.give(first);
    await Promise.all(background); // emptied and kept; a spare was made meanwhile
    const second = await dirs.take("b");
    const third = await dirs.take("c");
    assert(second.startsWith(`${temp}/nix-build-b.drv-`), second);
    const reused = [second, third].find((d) => Deno.statSync(d).ino === ino);
    assert(reused !== undefined, "the given directory was not reused");
    assertEquals(names(reused), []);
    assertEquals(Deno.statSync(reused).mode! & 0o777, 0o700);
    await Promise.all(background);
    dirs.close();
    assertEquals(
      names(temp).filter((n) => !n.startsWith("nix-build-b") && !n.startsWith("nix-build-c")),
      [],
    );
  }));

Deno.test("BuildDirs without background work makes and removes each dir at once", () =>
  withTemp(async (temp) => {
    const dirs = new BuildDirs(temp);
    const dir = await dirs.take("a");
    Deno.writeTextFileSync(`${dir}/file`, "x");
    dirs.give(dir);
    assertEquals(names(temp), []);
  }));
