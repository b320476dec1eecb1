import { assert, assertEquals } from "../_assert.ts";
import { availableBytes, isDiskFull } from "../../lib/scheduler/_disk_space.ts";

Deno.test("availableBytes() reads statvfs; isDiskFull() ignores what it cannot read", () => {
  const dir = Deno.makeTempDirSync({ prefix: "kiln-disk-space-" });
  try {
    const free = availableBytes(dir);
    assert(free !== undefined && free > 0, `${free}`);
    assertEquals(availableBytes(`${dir}/absent`), undefined);
    assertEquals(isDiskFull([`${dir}/absent`]), false);
    assertEquals(isDiskFull([]), false);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
