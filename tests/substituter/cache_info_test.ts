import { assertEquals, assertThrows } from "../_assert.ts";
import { parseCacheInfo, printCacheInfo } from "../../lib/substituter/mod.ts";

Deno.test("parseCacheInfo() reads cache.nixos.org's header and prints it back", () => {
  const text = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n";
  const info = parseCacheInfo(text, "https://cache.nixos.org/nix-cache-info");
  assertEquals(info, { storeDir: "/nix/store", wantMassQuery: true, priority: 40 });
  assertEquals(printCacheInfo(info), text);
});

Deno.test("parseCacheInfo() is lenient as Nix: trims values, skips unknown keys and stray lines", () => {
  const info = parseCacheInfo("StoreDir:/nix/store  \n\njunk\nOther: x\nWantMassQuery: 0\n", "c");
  assertEquals(info, { storeDir: "/nix/store", wantMassQuery: false });
  assertEquals(printCacheInfo({ storeDir: "/s" }), "StoreDir: /s\n");
  assertEquals(parseCacheInfo("", "c"), {});
});

Deno.test("parseCacheInfo() rejects a Priority it would misread and a relative StoreDir", () => {
  assertThrows(() => parseCacheInfo("Priority: high\n", "c"), SyntaxError, "Priority 'high'");
  assertThrows(() => parseCacheInfo("StoreDir: nix\n", "c"), SyntaxError, "not an absolute path");
});
