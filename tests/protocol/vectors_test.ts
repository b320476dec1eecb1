import { assertEquals } from "../_assert.ts";
import { WireReader, WireWriter } from "../../lib/protocol/mod.ts";
import { readVectorBytes, readVectorJson, STORE_DIR, VECTORS } from "./_vectors.ts";

for (const vector of VECTORS) {
  const label = `${vector.dir}/${vector.name}`;
  const ctx = { storeDir: STORE_DIR, version: vector.version };

  Deno.test(`protocol codec decodes Nix's ${label} to the values of its JSON`, () => {
    const reader = new WireReader(readVectorBytes(vector.dir, vector.name));
    const values = vector.decode(reader, ctx);
    reader.expectEnd();
    assertEquals(values, vector.expected(readVectorJson(vector.dir, vector.name)));
  });

  Deno.test(`protocol codec encodes the values of ${label} to Nix's exact bytes`, () => {
    const writer = new WireWriter();
    vector.encode(writer, vector.expected(readVectorJson(vector.dir, vector.name)), ctx);
    assertEquals(writer.finish(), new Uint8Array(readVectorBytes(vector.dir, vector.name)));
  });
}
