import { assertEquals } from "../_assert.ts";
import { mebibytes, renderMissing } from "../../lib/cli/commands/_dry_run.ts";

Deno.test("mebibytes() prints as C's %.2f of a float: halves to even, float precision", () => {
  assertEquals(mebibytes(0), "0.00");
  assertEquals(mebibytes(131072), "0.12"); // 0.125 exactly: to even
  assertEquals(mebibytes(393216), "0.38"); // 0.375 exactly: to even
  assertEquals(mebibytes(136315), "0.13"); // 0.13000011...
  assertEquals(mebibytes(1048576), "1.00");
  assertEquals(mebibytes(16777217), "16.00"); // a float has 24 bits: 2^24 + 1 is 2^24
  assertEquals(mebibytes(5 * 1024 ** 4), "5242880.00");
});

Deno.test("renderMissing() words one and several derivations and paths as Nix 2.8", () => {
  assertEquals(
    renderMissing({ willBuild: [], willSubstitute: [], downloadSize: 0, narSize: 0 }),
    [],
  );
  assertEquals(
    renderMissing({
      willBuild: ["/s/a.drv"],
      willSubstitute: ["/s/b"],
      downloadSize: 5,
      narSize: 9,
    }),
    [
      "this derivation will be built:",
      "  /s/a.drv",
      "this path will be fetched (0.00 MiB download, 0.00 MiB unpacked):",
      "  /s/b",
    ],
  );
  assertEquals(
    renderMissing({
      willBuild: ["/s/a.drv", "/s/c.drv"],
      willSubstitute: ["/s/b", "/s/d"],
      downloadSize: 1048576,
      narSize: 3145728,
    }),
    [
      "these 2 derivations will be built:",
      "  /s/a.drv",
      "  /s/c.drv",
      "these 2 paths will be fetched (1.00 MiB download, 3.00 MiB unpacked):",
      "  /s/b",
      "  /s/d",
    ],
  );
});
