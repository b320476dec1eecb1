/** Bad input gives a value or a WireFormatError: never another exception, never a hang. */

import { assert, assertEquals } from "../_assert.ts";
import {
  readStderrMessage,
  WireFormatError,
  WireReader,
  WireTruncatedError,
  WireWriter,
  writeStderrMessage,
} from "../../lib/protocol/mod.ts";
import { seededRandom } from "./_random.ts";
import { readVectorBytes, STORE_DIR, type Vector, VECTORS } from "./_vectors.ts";

function decodeAll(vector: Vector, bytes: Uint8Array): void {
  const reader = new WireReader(bytes);
  const values = vector.decode(reader, { storeDir: STORE_DIR, version: vector.version });
  assert(Array.isArray(values));
}

function expectWireError(e: unknown, what: string): void {
  if (!(e instanceof WireFormatError)) {
    throw new Error(`${what}: expected a WireFormatError, got ${e}`, { cause: e });
  }
}

Deno.test("every truncation of every vector is a WireTruncatedError", () => {
  let cases = 0;
  for (const vector of VECTORS) {
    const bytes = readVectorBytes(vector.dir, vector.name);
    for (let cut = 1; cut < bytes.length; cut++) {
      // A cut on a value boundary is a shorter, valid vector; every other cut must throw.
      const prefix = bytes.subarray(0, cut);
      try {
        decodeAll(vector, prefix);
      } catch (e) {
        if (!(e instanceof WireTruncatedError)) {
          throw new Error(`${vector.name}[:${cut}]: expected a WireTruncatedError, got ${e}`);
        }
        cases++;
        continue;
      }
      assert(cut % 8 === 0, `${vector.name} cut at ${cut} decoded`);
    }
  }
  assert(cases > 5000, `only ${cases} truncations threw`);
});

Deno.test("random byte mutations of the vectors give a value or a WireFormatError", () => {
  const random = seededRandom(20261207);
  let errors = 0;
  const rounds = 4000;
  for (let round = 0; round < rounds; round++) {
    const vector = VECTORS[Math.floor(random() * VECTORS.length)];
    const bytes = new Uint8Array(readVectorBytes(vector.dir, vector.name));
    const flips = 1 + Math.floor(random() * 3);
    for (let i = 0; i < flips; i++) {
      const at = Math.floor(random() * bytes.length);
      bytes[at] = random() < 0.5
        ? bytes[at] ^ (1 << Math.floor(random() * 8))
        : Math.floor(random() * 256);
    }
    try {
      decodeAll(vector, bytes);
    } catch (e) {
      expectWireError(e, `${vector.name} round ${round}`);
      errors++;
    }
  }
  assert(errors > rounds / 4, `only ${errors} of ${rounds} mutations were refused`);
});

Deno.test("random mutations of stderr messages give a message or a WireFormatError", () => {
  const writer = new WireWriter();
  writeStderrMessage(writer, {
    type: "startActivity",
    id: 1,
    level: 3,
    activityType: 105,
    text: "building",
    fields: ["/nix/store/x.drv", 1],
    parent: 0,
  }, (1 << 8) | 34);
  writeStderrMessage(writer, {
    type: "error",
    error: { level: 0, name: "Error", message: "m", traces: ["t"], exitStatus: 1 },
  }, (1 << 8) | 34);
  const original = writer.finish();
  const random = seededRandom(34);
  for (let round = 0; round < 2000; round++) {
    const bytes = new Uint8Array(original);
    bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    const reader = new WireReader(bytes.subarray(0, Math.floor(random() * (bytes.length + 1))));
    try {
      while (reader.remaining > 0) readStderrMessage(reader, (1 << 8) | 34);
    } catch (e) {
      expectWireError(e, `stderr round ${round}`);
    }
  }
});

Deno.test("WireReader refuses lengths over its limits and non-zero padding, with offsets", () => {
  const long = new WireWriter().writeInt(2 ** 40).finish();
  const lengthError = catchWire(() => new WireReader(long).readString("log line"));
  assert(lengthError.message.includes("exceeds the limit") && lengthError.offset === 0);
  const count = new WireWriter().writeInt(2 ** 30).finish();
  assert(
    catchWire(() => new WireReader(count).readStrings()).message.includes("exceeds the limit"),
  );
  const padded = new WireWriter().writeString("abc").finish();
  padded[12] = 1;
  const padError = catchWire(() => new WireReader(padded).readString("name"));
  assert(padError.message.includes("Non-zero padding") && padError.offset === 11);
  const huge = new Uint8Array(8).fill(0xff);
  assert(catchWire(() => new WireReader(huge).readInt()).message.includes("too large"));
  assertEquals(new WireReader(huge).readBigInt("maxFreed"), 2n ** 64n - 1n);
  assertEquals(new WireWriter().writeBigInt(2n ** 64n - 1n).finish(), huge);
});

function catchWire(fn: () => unknown): WireFormatError {
  try {
    fn();
  } catch (e) {
    expectWireError(e, "limit");
    return e as WireFormatError;
  }
  throw new Error("Expected a WireFormatError");
}

Deno.test("readString() keeps bytes that are not UTF-8 and writeString() gives them back", () => {
  const raw = new Uint8Array([0x61, 0xff, 0xc3, 0x28, 0x62]);
  const bytes = new WireWriter().writeBytes(raw).finish();
  const text = new WireReader(bytes).readString("env value");
  assertEquals(new WireWriter().writeString(text).finish(), bytes);
});
