import { assertEquals, assertThrows } from "../_assert.ts";
import {
  hashBytes,
  makeFixedOutputPath,
  makeTextPath,
  parseHash,
  renderContentAddress,
} from "../../lib/hashing/mod.ts";
import {
  contentCheck,
  isContentAddressed,
  type NarInfo,
  NarInfoSyntaxError,
  parseNarInfo,
  printNarInfo,
  provesItself,
} from "../../lib/substituter/mod.ts";

const STORE = "/nix/store";
const WHENCE = "https://cache.example/pw4nsqbc4wg4kgm4cvwqc1y7n4ci64yc.narinfo";

// Written by Nix 2.8 (`nix copy --to file://...`), store dir changed to /nix/store.
const NIX_WRITTEN = `StorePath: /nix/store/pw4nsqbc4wg4kgm4cvwqc1y7n4ci64yc-x
URL: nar/07gwk1q17szwhphap1xcbagld5x1h9y12hyjx4v74zksxq6jxv1w.nar.xz
Compression: xz
FileHash: sha256:07gwk1q17szwhphap1xcbagld5x1h9y12hyjx4v74zksxq6jxv1w
FileSize: 184
NarHash: sha256:0jrrkgvrf210ccn7kyf5f8djybm0rygzsxlwalf5dr8njham3g18
NarSize: 176
References: gfjyr3fabw60vnzsyj8vp9kgszj3wirv-dep
Deriver: swkxrnwk4jcwcvqayica59x9krvwdg6p-x.drv
Sig: nixkey-1:eINK67vN1c1CZrwmhVrgMLFi6pBQkeK64iUCHXb8vOVzfN7I8jeNH+UGO+G25ydOJ1+QAONy3ay9qPEbFz1LCw==
`;

const MINIMAL = `StorePath: /nix/store/gfjyr3fabw60vnzsyj8vp9kgszj3wirv-dep
URL: nar/0vndhnpqzhz4n0lz6920j0pjmzap93vf8mncpd77m1hqiff28gfm.nar
NarHash: sha256:0i0g5h0y4w5xf5rynap2x27zaib43xl5qr5wlj9vw83ai7p732m1
NarSize: 120
`;

/** MINIMAL with `line` replacing the line starting with the same field, or appended. */
function withLine(line: string, base = MINIMAL): string {
  const field = line.slice(0, line.indexOf(":") + 1);
  const lines = base.trimEnd().split("\n");
  const i = lines.findIndex((l) => l.startsWith(field));
  if (i >= 0) lines[i] = line;
  else lines.push(line);
  return lines.join("\n") + "\n";
}

function corrupt(text: string, includes: string): void {
  const e = assertThrows(() => parseNarInfo(text, STORE, WHENCE), NarInfoSyntaxError, includes);
  assertEquals(e.message.startsWith(`NAR info '${WHENCE}' is corrupt: `), true, e.message);
  assertEquals(e.message.includes("\n"), false);
}

Deno.test("parseNarInfo() reads every field Nix writes", () => {
  const info = parseNarInfo(NIX_WRITTEN, STORE, WHENCE);
  assertEquals(info, {
    storePath: "/nix/store/pw4nsqbc4wg4kgm4cvwqc1y7n4ci64yc-x",
    url: "nar/07gwk1q17szwhphap1xcbagld5x1h9y12hyjx4v74zksxq6jxv1w.nar.xz",
    compression: "xz",
    fileHash: parseHash("sha256:07gwk1q17szwhphap1xcbagld5x1h9y12hyjx4v74zksxq6jxv1w"),
    fileSize: 184,
    narHash: parseHash("sha256:0jrrkgvrf210ccn7kyf5f8djybm0rygzsxlwalf5dr8njham3g18"),
    narSize: 176,
    references: ["/nix/store/gfjyr3fabw60vnzsyj8vp9kgszj3wirv-dep"],
    deriver: "/nix/store/swkxrnwk4jcwcvqayica59x9krvwdg6p-x.drv",
    sigs: [
      "nixkey-1:eINK67vN1c1CZrwmhVrgMLFi6pBQkeK64iUCHXb8vOVzfN7I8jeNH+UGO+G25ydOJ1+QAONy3ay9qPEbFz1LCw==",
    ],
  });
});

Deno.test("printNarInfo() writes a parsed narinfo back byte for byte", () => {
  assertEquals(printNarInfo(parseNarInfo(NIX_WRITTEN, STORE, WHENCE)), NIX_WRITTEN);
});

Deno.test("printNarInfo() writes empty References with a trailing space, then System, Sig, CA", () => {
  const info: NarInfo = {
    ...parseNarInfo(MINIMAL, STORE, WHENCE),
    compression: "zstd",
    system: "x86_64-linux",
    sigs: ["b:" + "B".repeat(86) + "==", "a:" + "A".repeat(86) + "=="],
    ca: "text:sha256:13ns0xymhkhgng27kis2x8w05bc8gw6nifqkg7r2npb3z0gfgqwc",
  };
  assertEquals(
    printNarInfo(info),
    `StorePath: /nix/store/gfjyr3fabw60vnzsyj8vp9kgszj3wirv-dep
URL: nar/0vndhnpqzhz4n0lz6920j0pjmzap93vf8mncpd77m1hqiff28gfm.nar
Compression: zstd
NarHash: sha256:0i0g5h0y4w5xf5rynap2x27zaib43xl5qr5wlj9vw83ai7p732m1
NarSize: 120
References: 
System: x86_64-linux
Sig: a:${"A".repeat(86)}==
Sig: b:${"B".repeat(86)}==
CA: text:sha256:13ns0xymhkhgng27kis2x8w05bc8gw6nifqkg7r2npb3z0gfgqwc
`,
  );
});

Deno.test("parseNarInfo() defaults Compression to bzip2 and reads unknown-deriver as none", () => {
  const info = parseNarInfo(withLine("Deriver: unknown-deriver"), STORE, WHENCE);
  assertEquals(info.compression, "bzip2");
  assertEquals(info.deriver, undefined);
  assertEquals(info.references, []);
});

Deno.test("parseNarInfo() ignores unknown fields and reads an empty CA as none", () => {
  const info = parseNarInfo(withLine("CA: ", withLine("Provenance: {}")), STORE, WHENCE);
  assertEquals(info.ca, undefined);
});

Deno.test("parseNarInfo() normalises a CA hash to nix32", () => {
  const hex = "a".repeat(64);
  const info = parseNarInfo(withLine(`CA: fixed:r:sha256:${hex}`), STORE, WHENCE);
  assertEquals(info.ca, `fixed:r:${parseHash(`sha256:${hex}`).toNix32Prefixed()}`);
});

Deno.test("parseNarInfo() sorts references and signatures", () => {
  const refs = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-b 00000000000000000000000000000000-a";
  const info = parseNarInfo(withLine(`References: ${refs}`), STORE, WHENCE);
  assertEquals(info.references, [
    "/nix/store/00000000000000000000000000000000-a",
    "/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-b",
  ]);
});

Deno.test("parseNarInfo() names each missing required field", () => {
  const without = (field: string) =>
    MINIMAL.split("\n").filter((l) => !l.startsWith(field)).join("\n");
  corrupt(without("StorePath:"), "StorePath is missing");
  corrupt(without("URL:"), "URL is missing");
  corrupt(without("NarHash:"), "NarHash is missing");
  corrupt(without("NarSize:"), "NarSize is missing or zero");
  corrupt(withLine("NarSize: 0"), "NarSize is missing or zero");
  corrupt("", "StorePath is missing");
});

Deno.test("parseNarInfo() rejects malformed lines and fields with the field's name", () => {
  corrupt(MINIMAL.trimEnd(), "does not end with a newline (line 4)");
  corrupt(MINIMAL + "garbage\n", "'garbage' is not 'Name: value' (line 5)");
  corrupt(withLine("NarSize:120"), "is not 'Name: value'");
  corrupt(withLine("NarSize: 12x"), "NarSize '12x' is not a non-negative integer (line 4)");
  corrupt(withLine("NarSize: -1"), "NarSize '-1'");
  corrupt(withLine("FileSize: 1e3"), "FileSize '1e3'");
  corrupt(withLine("NarHash: sha256:xyz"), "NarHash 'sha256:xyz' is not a valid hash");
  corrupt(withLine("NarHash: 0i0g5h0y4w5xf5rynap2x27zaib43xl5qr5wlj9vw83ai7p732m1"), "NarHash");
  corrupt(withLine(`NarHash: sha1:${"0".repeat(40)}`), "is not a sha256 hash");
  corrupt(withLine("FileHash: md5:nope"), "FileHash 'md5:nope'");
  corrupt(withLine("Compression: x z"), "Compression 'x z'");
  corrupt(withLine("Sig: nokey"), "Sig 'nokey' is not 'keyname:base64'");
  corrupt(withLine("Sig: k:not base64"), "Sig 'k:not base64'");
  corrupt(withLine("CA: fixed:sha256:nope"), "CA 'fixed:sha256:nope' has an invalid hash");
  corrupt(withLine(`CA: text:sha1:${"0".repeat(40)}`), "is not a content address");
  corrupt(withLine("System: "), "System is empty");
  corrupt(MINIMAL + MINIMAL.split("\n")[3] + "\n", "NarSize appears twice (line 5)");
});

Deno.test("parseNarInfo() rejects store paths outside the store and bad references", () => {
  corrupt(
    withLine("StorePath: /other/store/gfjyr3fabw60vnzsyj8vp9kgszj3wirv-dep"),
    "is not a store path directly under /nix/store",
  );
  corrupt(withLine("StorePath: /nix/store/tooshort-dep"), "StorePath");
  corrupt(withLine("References: ../etc/passwd"), "References '../etc/passwd' is not a store path");
  corrupt(
    withLine("References: eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x"),
    "invalid hash part",
  );
  corrupt(
    withLine(`References: ${"0".repeat(32)}-a ${"0".repeat(32)}-a`),
    "References lists",
  );
  corrupt(withLine("Deriver: /nix/store/x.drv"), "Deriver '/nix/store/x.drv' is not a store path");
});

Deno.test("parseNarInfo() refuses URLs that could leave the cache", () => {
  corrupt(withLine("URL: https://evil.example/nar/x.nar"), "has a scheme");
  corrupt(withLine("URL: file:///etc/passwd"), "has a scheme");
  corrupt(withLine("URL: /etc/passwd"), "is absolute");
  corrupt(withLine("URL: //evil.example/x"), "is absolute");
  corrupt(withLine("URL: nar/../../x.nar"), "has the path segment '..'");
  corrupt(withLine("URL: nar/%2e%2e/x.nar"), "has the path segment '%2e%2e'");
  corrupt(withLine("URL: nar/a%2Fb.nar"), "could leave the cache");
  corrupt(withLine("URL: nar/./x.nar"), "has the path segment '.'");
  corrupt(withLine("URL: nar\\..\\x"), "'\\'");
  corrupt(withLine("URL: nar//x.nar"), "empty path segment");
  corrupt(withLine("URL: nar/%zz.nar"), "malformed percent escape");
  corrupt(withLine("URL: "), "URL is empty");
  const ok = parseNarInfo(
    withLine("URL: nar/abc.nar?hash=gfjyr3fabw60vnzsyj8vp9kgszj3wirv"),
    STORE,
    WHENCE,
  );
  assertEquals(ok.url, "nar/abc.nar?hash=gfjyr3fabw60vnzsyj8vp9kgszj3wirv");
});

Deno.test("isContentAddressed() holds only where the CA field yields the store path", () => {
  const hash = hashBytes("sha256", "contents");
  const other = hashBytes("sha256", "other contents");
  const dep = makeTextPath(STORE, hashBytes("sha256", "dep"), "dep");
  const info = (storePath: string, ca: string, references: string[] = []): NarInfo => ({
    storePath,
    url: "nar/x.nar",
    compression: "none",
    narHash: hash,
    narSize: 8,
    references,
    sigs: [],
    ca,
  });
  const text = makeTextPath(STORE, hash, "t", [dep]);
  assertEquals(
    isContentAddressed(STORE, info(text, renderContentAddress("text", hash), [dep])),
    true,
  );
  // The same CA with other references, or another hash, names another path.
  assertEquals(isContentAddressed(STORE, info(text, renderContentAddress("text", hash))), false);
  assertEquals(
    isContentAddressed(STORE, info(text, renderContentAddress("text", other), [dep])),
    false,
  );
  const source = makeFixedOutputPath(STORE, {
    method: "nar",
    hash,
    name: "s",
    selfReference: true,
  });
  const ca = renderContentAddress("nar", hash);
  assertEquals(isContentAddressed(STORE, info(source, ca, [source])), true);
  assertEquals(isContentAddressed(STORE, info(source, ca)), false);
  const flat = makeFixedOutputPath(STORE, {
    method: "flat",
    hash: hashBytes("sha1", "x"),
    name: "f",
  });
  const flatCa = renderContentAddress("flat", hashBytes("sha1", "x"));
  assertEquals(isContentAddressed(STORE, info(flat, flatCa)), true);
  // A flat fixed output cannot have references: claiming some proves nothing.
  assertEquals(isContentAddressed(STORE, info(flat, flatCa, [dep])), false);
});

Deno.test("provesItself() and contentCheck(): a CA field that yields the path, checked on import", () => {
  const narHash = hashBytes("sha256", "a NAR");
  const path = makeFixedOutputPath(STORE, { method: "nar", hash: narHash, name: "s" });
  const info = (changes: Partial<NarInfo>): NarInfo => ({
    storePath: path,
    url: "nar/x.nar",
    compression: "none",
    narHash,
    narSize: 8,
    references: [],
    sigs: [],
    ca: renderContentAddress("nar", narHash),
    ...changes,
  });
  assertEquals(provesItself(STORE, info({})), true);
  assertEquals(contentCheck(info({})), { method: "nar", hash: narHash });
  assertEquals(provesItself(STORE, info({ ca: undefined })), false);
  assertEquals(contentCheck(info({ ca: undefined })), undefined);
  // Text and flat addresses prove themselves too: the import hashes the file's contents.
  const text = makeTextPath(STORE, narHash, "t");
  const textCa = renderContentAddress("text", narHash);
  assertEquals(provesItself(STORE, info({ storePath: text, ca: textCa })), true);
  assertEquals(contentCheck(info({ storePath: text, ca: textCa })), {
    method: "text",
    hash: narHash,
  });
  const sha1 = hashBytes("sha1", "x");
  const flat = makeFixedOutputPath(STORE, { method: "flat", hash: sha1, name: "f" });
  const flatCa = renderContentAddress("flat", sha1);
  assertEquals(provesItself(STORE, info({ storePath: flat, ca: flatCa })), true);
  assertEquals(contentCheck(info({ storePath: flat, ca: flatCa })), { method: "flat", hash: sha1 });
  // A CA field that names another path proves nothing.
  assertEquals(provesItself(STORE, info({ storePath: text, ca: flatCa })), false);
  // Nor one of a path that refers to itself (Nix hashes those modulo their own hash part).
  const own = makeFixedOutputPath(STORE, {
    method: "nar",
    hash: narHash,
    name: "s",
    selfReference: true,
  });
  assertEquals(provesItself(STORE, info({ storePath: own, references: [own] })), false);
  assertEquals(contentCheck(info({ storePath: own, references: [own] })), undefined);
});
