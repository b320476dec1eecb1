import { assertEquals, assertThrows } from "../_assert.ts";
import {
  readStderrMessage,
  STDERR_ERROR,
  STDERR_START_ACTIVITY,
  type StderrMessage,
  WireFormatError,
  WireReader,
  WireWriter,
  writeStderrMessage,
} from "../../lib/protocol/mod.ts";

const V1_25 = (1 << 8) | 25;
const V1_34 = (1 << 8) | 34;

const MESSAGES: StderrMessage[] = [
  { type: "next", text: "building '/nix/store/x.drv'...\n" },
  { type: "read", length: 65536 },
  { type: "write", data: new Uint8Array([1, 2, 3]) },
  { type: "last" },
  {
    type: "startActivity",
    id: 42,
    level: 3,
    activityType: 105,
    text: "building x",
    fields: ["/nix/store/x.drv", "", 1, 1],
    parent: 7,
  },
  { type: "stopActivity", id: 42 },
  { type: "result", id: 42, resultType: 101, fields: ["a line"] },
];

Deno.test("stderr messages survive writeStderrMessage() then readStderrMessage()", () => {
  for (const message of MESSAGES) {
    const writer = new WireWriter();
    writeStderrMessage(writer, message, V1_34);
    const reader = new WireReader(writer.finish());
    assertEquals(readStderrMessage(reader, V1_34), message);
    reader.expectEnd();
  }
});

Deno.test("writeStderrMessage() lays out START_ACTIVITY as Nix's TunnelLogger does", () => {
  const writer = new WireWriter();
  writeStderrMessage(writer, MESSAGES[4], V1_34);
  const expected = new WireWriter().writeInt(STDERR_START_ACTIVITY).writeInt(42).writeInt(3)
    .writeInt(105).writeString("building x").writeInt(4).writeInt(1)
    .writeString("/nix/store/x.drv").writeInt(1).writeString("").writeInt(0).writeInt(1)
    .writeInt(0).writeInt(1).writeInt(7).finish();
  assertEquals(writer.finish(), expected);
});

Deno.test("an error is structured from 1.26 on and a message with a status before", () => {
  const error = {
    level: 0,
    name: "Error",
    message: "builder failed",
    traces: ["while building"],
    exitStatus: 1,
  };
  const writer = new WireWriter();
  writeStderrMessage(writer, { type: "error", error }, V1_34);
  const structured = new WireWriter().writeInt(STDERR_ERROR).writeString("Error").writeInt(0)
    .writeString("Error").writeString("builder failed").writeInt(0).writeInt(1).writeInt(0)
    .writeString("while building").finish();
  const bytes = writer.finish();
  assertEquals(bytes, structured);
  assertEquals(readStderrMessage(new WireReader(bytes), V1_34), { type: "error", error });

  const old = new WireWriter();
  writeStderrMessage(old, { type: "error", error: { ...error, exitStatus: 100 } }, V1_25);
  assertEquals(
    old.finish(),
    new WireWriter().writeInt(STDERR_ERROR).writeString("builder failed").writeInt(100).finish(),
  );
});

Deno.test("readStderrMessage() rejects unknown types, field types and error positions", () => {
  const unknown = new WireWriter().writeInt(0x1234).finish();
  assertThrows(() => readStderrMessage(new WireReader(unknown), V1_34), WireFormatError, "0x1234");
  const field = new WireWriter().writeInt(0x52534c54).writeInt(1).writeInt(2).writeInt(1)
    .writeInt(9).finish();
  assertThrows(
    () => readStderrMessage(new WireReader(field), V1_34),
    WireFormatError,
    "field type 9",
  );
  const pos = new WireWriter().writeInt(STDERR_ERROR).writeString("Error").writeInt(0)
    .writeString("Error").writeString("m").writeInt(1).finish();
  assertThrows(() => readStderrMessage(new WireReader(pos), V1_34), WireFormatError, "position");
});
