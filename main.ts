/** kiln: a Nix-compatible build engine. Parses nothing itself: lib/cli does it all. */

import { main } from "./lib/cli/mod.ts";

if (import.meta.main) Deno.exit(await main(Deno.args));
