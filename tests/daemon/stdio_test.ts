import { assertEquals, assertStringIncludes } from "../_assert.ts";
import { KilnStore } from "../_kiln.ts";
import {
  readStderrMessages,
  readUnkeyedValidPathInfo,
  type StderrMessage,
  WireReader,
  WireTruncatedError,
  WireWriter,
  WORKER_MAGIC_1,
  WORKER_MAGIC_2,
  WorkerOp,
} from "../../lib/protocol/mod.ts";
import { join } from "node:path";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** `kiln daemon --stdio --store local?...` as ssh-ng:// starts it, driven over its pipes. */
class StdioClient {
  readonly child: Deno.ChildProcess;
  readonly #input: WritableStreamDefaultWriter<Uint8Array>;
  readonly #output: AsyncIterator<Uint8Array>;
  readonly #chunks: Uint8Array[] = [];
  #consumed = 0;
  version = 0;

  constructor(readonly store: KilnStore) {
    const uri =
      `local?store=${store.storeDir}&root=${store.env.KILN_STORE_ROOT}&state=${store.env.KILN_STATE_DIR}`;
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--quiet", MAIN, "daemon", "--stdio", "--store", uri],
      env: { XDG_CONFIG_HOME: store.env.XDG_CONFIG_HOME },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#input = this.child.stdin.getWriter();
    this.#output = this.child.stdout[Symbol.asyncIterator]();
  }

  send(write: (w: WireWriter) => void): Promise<void> {
    const w = new WireWriter();
    write(w);
    return this.#input.write(w.finish());
  }

  /** Parses the next reply, reading until there are enough bytes; undefined at the end. */
  async read<T>(parse: (r: WireReader) => T): Promise<T | undefined> {
    for (;;) {
      const reader = WireReader.fromChunks(this.#chunks);
      reader.readRaw(this.#consumed);
      const value = attempt(() => parse(reader));
      if (value !== undefined) {
        this.#consumed = reader.offset;
        return value.value;
      }
      const next = await this.#output.next();
      if (next.done) return undefined;
      this.#chunks.push(next.value);
    }
  }

  /** The stderr messages of one operation, up to its LAST or ERROR. */
  messages(): Promise<StderrMessage[] | undefined> {
    return this.read((r) => readStderrMessages(r, this.version));
  }

  /** Sends the magic and `version`; returns the daemon's greeting. */
  async hello(version: number): Promise<number | undefined> {
    await this.send((w) => w.writeInt(WORKER_MAGIC_1));
    const greeting = await this.read((r) => [r.readInt(), r.readInt()]);
    assertEquals(greeting?.[0], WORKER_MAGIC_2);
    await this.send((w) => {
      w.writeInt(version).writeInt(0).writeBool(false); // no CPU affinity, reserveSpace false
    });
    this.version = version;
    return greeting?.[1];
  }

  /** Closes stdin and returns the exit status and what the daemon printed on stderr. */
  async end(): Promise<{ code: number; stderr: string }> {
    await this.#input.close().catch(() => {});
    while (!(await this.#output.next()).done);
    const stderr = new TextDecoder().decode(
      new Uint8Array(await new Response(this.child.stderr).arrayBuffer()),
    );
    return { code: (await this.child.status).code, stderr };
  }
}

/** `{ value }` of `parse()`, or undefined when the bytes ran out. */
function attempt<T>(parse: () => T): { value: T } | undefined {
  try {
    return { value: parse() };
  } catch (e) {
    if (e instanceof WireTruncatedError) return undefined;
    throw e;
  }
}

async function withClient(fn: (client: StdioClient) => Promise<void>): Promise<void> {
  const root = Deno.makeTempDirSync({ prefix: "kiln-daemon-test-" });
  const store = new KilnStore(join(root, "store"), root);
  store.env.KILN_STORE_ROOT = "/";
  try {
    await fn(new StdioClient(store));
  } finally {
    store.cleanup();
  }
}

for (const minor of [21, 34]) {
  Deno.test(`kiln daemon --stdio serves a 1.${minor} client: add text, validity, path info`, () =>
    withClient(async (client) => {
      assertEquals(await client.hello((1 << 8) | minor), (1 << 8) | 34);
      if (minor >= 33) assertStringIncludes((await client.read((r) => r.readString()))!, "kiln");
      assertEquals(await client.messages(), [{ type: "last" }]);
      await client.send((w) =>
        w.writeInt(WorkerOp.AddTextToStore).writeString("hello.txt").writeString("hello")
          .writeStrings([])
      );
      assertEquals(await client.messages(), [{ type: "last" }]);
      const path = (await client.read((r) => r.readString()))!;
      assertEquals(Deno.readTextFileSync(path), "hello");
      await client.send((w) => w.writeInt(WorkerOp.IsValidPath).writeString(path));
      assertEquals(await client.messages(), [{ type: "last" }]);
      assertEquals(await client.read((r) => r.readBool()), true);
      await client.send((w) => w.writeInt(WorkerOp.QueryPathInfo).writeString(path));
      assertEquals(await client.messages(), [{ type: "last" }]);
      const ctx = { storeDir: client.store.storeDir, version: client.version };
      const info = await client.read((r) => {
        r.readBool();
        return readUnkeyedValidPathInfo(r, ctx);
      });
      assertEquals(info?.narSize, 120);
      assertEquals(info?.references, []);
      // Nothing is substitutable through the daemon, and a text file has no deriver.
      await client.send((w) => w.writeInt(WorkerOp.HasSubstitutes).writeString(path));
      assertEquals(await client.messages(), [{ type: "last" }]);
      assertEquals(await client.read((r) => r.readBool()), false);
      await client.send((w) => w.writeInt(WorkerOp.QuerySubstitutablePaths).writeStrings([path]));
      assertEquals(await client.messages(), [{ type: "last" }]);
      assertEquals(await client.read((r) => r.readStrings()), []);
      await client.send((w) => w.writeInt(WorkerOp.QueryValidDerivers).writeString(path));
      assertEquals(await client.messages(), [{ type: "last" }]);
      assertEquals(await client.read((r) => r.readStrings()), []);
      const ended = await client.end();
      assertEquals(ended.code, 0, ended.stderr);
    }));
}

Deno.test("kiln daemon --stdio answers an operation it does not serve with ERROR, then closes", () =>
  withClient(async (client) => {
    await client.hello((1 << 8) | 34);
    await client.read((r) => r.readString());
    await client.messages();
    await client.send((w) => w.writeInt(WorkerOp.CollectGarbage));
    const [error] = (await client.messages())!;
    assertEquals(error.type, "error");
    if (error.type === "error") {
      assertEquals(
        error.error.message,
        "Operation CollectGarbage (20) is not supported by kiln's daemon (protocol 1.34)",
      );
    }
    assertEquals(await client.read((r) => r.readInt()), undefined); // closed
    const ended = await client.end();
    assertEquals(ended.code, 1);
    assertStringIncludes(ended.stderr, "CollectGarbage (20) is not supported");
  }));

Deno.test("kiln daemon --stdio refuses a malformed request with ERROR, then closes", () =>
  withClient(async (client) => {
    await client.hello((1 << 8) | 34);
    await client.read((r) => r.readString());
    await client.messages();
    await client.send((w) => w.writeInt(WorkerOp.IsValidPath).writeString("/not/a/store/path"));
    const [error] = (await client.messages())!;
    assertEquals(error.type, "error");
    if (error.type === "error") assertStringIncludes(error.error.message, "/not/a/store/path");
    assertEquals(await client.read((r) => r.readInt()), undefined);
    assertEquals((await client.end()).code, 1);
  }));

Deno.test("kiln daemon --stdio refuses a client older than 1.21", () =>
  withClient(async (client) => {
    await client.hello((1 << 8) | 20);
    assertEquals(await client.read((r) => r.readInt()), undefined);
    const ended = await client.end();
    assertEquals(ended.code, 1);
    assertStringIncludes(ended.stderr, "Protocol version 1.20 is too old (need 1.21)");
  }));
