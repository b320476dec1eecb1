import { assertEquals, assertThrows } from "../_assert.ts";
import { parseHash } from "../../lib/hashing/mod.ts";
import {
  parseContentAddressMethod,
  readAddTextToStoreRequest,
  readAddToStoreNarRequest,
  readAddToStoreRequest,
  readDerivationOutputMap,
  readMissingReply,
  WireFormatError,
  WireReader,
  WireWriter,
  writeAddTextToStoreRequest,
  writeAddToStoreNarRequest,
  writeAddToStoreRequest,
  writeDerivationOutputMap,
  writeMissingReply,
} from "../../lib/protocol/mod.ts";

const V34 = (1 << 8) | 34;
const CTX = { storeDir: "/nix/store", version: V34 };
const A = "/nix/store/00000000000000000000000000000000-a";
const B = "/nix/store/11111111111111111111111111111111-b";
const DRV = "/nix/store/22222222222222222222222222222222-b.drv";

/** What `write` appends to a fresh writer. */
function bytesOf(write: (w: WireWriter) => void): Uint8Array {
  const w = new WireWriter();
  write(w);
  return w.finish();
}

Deno.test("AddToStore's request (1.25) is name, method, sorted references, repair", () => {
  const request = { name: "x", method: "fixed:r:sha256", references: [B, A], repair: false };
  const bytes = bytesOf((w) => writeAddToStoreRequest(w, request));
  assertEquals(
    bytes,
    bytesOf((w) =>
      w.writeString("x").writeString("fixed:r:sha256").writeStrings([A, B]).writeInt(0)
    ),
  );
  assertEquals(readAddToStoreRequest(new WireReader(bytes), CTX), {
    ...request,
    references: [A, B],
  });
  assertThrows(
    () => readAddToStoreRequest(new WireReader(bytes), { ...CTX, version: (1 << 8) | 24 }),
    WireFormatError,
    "before protocol 1.25",
  );
});

Deno.test("parseContentAddressMethod() reads the methods AddToStore sends and names a bad one", () => {
  assertEquals(parseContentAddressMethod("text:sha256"), { method: "text", algorithm: "sha256" });
  assertEquals(parseContentAddressMethod("fixed:r:sha1"), { method: "nar", algorithm: "sha1" });
  assertEquals(parseContentAddressMethod("fixed:md5"), { method: "flat", algorithm: "md5" });
  for (const bad of ["text:sha1", "fixed:r:sha3", "git:sha1", ""]) {
    assertThrows(() => parseContentAddressMethod(bad), SyntaxError, `'${bad}'`);
  }
});

Deno.test("AddTextToStore's request is name, text, references", () => {
  const request = { name: "t", text: new TextEncoder().encode("hello"), references: [A] };
  const bytes = bytesOf((w) => writeAddTextToStoreRequest(w, request));
  assertEquals(bytes, bytesOf((w) => w.writeString("t").writeString("hello").writeStrings([A])));
  assertEquals(readAddTextToStoreRequest(new WireReader(bytes), CTX), request);
});

Deno.test("AddToStoreNar's request is the path info, then repair and dontCheckSigs", () => {
  const info = {
    path: B,
    narHash: parseHash("sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"),
    references: [A],
    registrationTime: 7,
    narSize: 120,
    ultimate: false,
    sigs: [],
  };
  const request = { info, repair: false, dontCheckSigs: true };
  const reader = new WireReader(bytesOf((w) => writeAddToStoreNarRequest(w, request, CTX)));
  assertEquals(readAddToStoreNarRequest(reader, CTX), request);
  reader.expectEnd();
});

Deno.test("QueryMissing's reply is three sorted path sets and two sizes", () => {
  const reply = {
    willBuild: [DRV],
    willSubstitute: [B, A],
    unknown: [],
    downloadSize: 1,
    narSize: 2,
  };
  const bytes = bytesOf((w) => writeMissingReply(w, reply));
  assertEquals(
    bytes,
    bytesOf((w) =>
      w.writeStrings([DRV]).writeStrings([A, B]).writeStrings([]).writeInt(1).writeInt(2)
    ),
  );
  assertEquals(readMissingReply(new WireReader(bytes), CTX), { ...reply, willSubstitute: [A, B] });
});

Deno.test("QueryDerivationOutputMap's reply maps output names, sorted, to a path or ''", () => {
  const outputs = new Map([["out", B], ["dev", undefined]]);
  const bytes = bytesOf((w) => writeDerivationOutputMap(w, outputs));
  assertEquals(
    bytes,
    bytesOf((w) =>
      w.writeInt(2).writeString("dev").writeString("").writeString("out").writeString(B)
    ),
  );
  assertEquals(
    readDerivationOutputMap(new WireReader(bytes), CTX),
    new Map([["dev", undefined], ["out", B]]),
  );
});
