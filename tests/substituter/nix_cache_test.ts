/**
 * Real Nix as the judge of the cache formats: kiln reads the binary caches Nix 2.8 writes (every
 * narinfo printed back byte for byte, signatures verified, NARs decompressed to their NarHash),
 * and Nix substitutes from a cache that kiln wrote and signed.
 */

import { assert, assertEquals } from "../_assert.ts";
import { join } from "node:path";
import { createHasher, type Hash, hashBytes } from "../../lib/hashing/mod.ts";
import {
  compress,
  compressionExtension,
  decompress,
  fingerprintPath,
  generateKeyPair,
  type NarInfo,
  parseCacheInfo,
  parseCompressionMethod,
  parseNarInfo,
  parsePublicKey,
  printCacheInfo,
  printNarInfo,
  printPublicKey,
  signFingerprint,
  verifySignatures,
  type WritableCompressionMethod,
} from "../../lib/substituter/mod.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";

async function digest(stream: ReadableStream<Uint8Array>): Promise<{ hash: Hash; size: number }> {
  const hasher = createHasher("sha256");
  let size = 0;
  for await (const chunk of stream) {
    hasher.update(chunk);
    size += chunk.length;
  }
  return { hash: hasher.digest(), size };
}

/** A Nix store holding a built output `x` (with a Deriver) that refers to a text path `dep`. */
async function buildPaths(nix: NixSandbox): Promise<string> {
  const expr = `derivation {
    name = "x"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "echo \${builtins.toFile "dep" "dep"} > $out" ];
  }`;
  const drv = (await nix.run("nix-instantiate", ["--expr", expr])).trim();
  return (await nix.run("nix-store", ["--realise", drv])).trim();
}

Deno.test({
  name: "parseNarInfo() and decompress() read the caches Nix writes; Nix reads kiln's",
  ignore: !nixAvailable,
  async fn(t) {
    const nix = new NixSandbox("sandbox = false\n");
    try {
      const sk = join(nix.root, "sk");
      const pk = join(nix.root, "pk");
      await nix.run("nix-store", ["--generate-binary-cache-key", "nix-test-1", sk, pk]);
      const nixKey = parsePublicKey(Deno.readTextFileSync(pk));
      const out = await buildPaths(nix);
      const xzInfos: NarInfo[] = [];

      for (const method of ["xz", "zstd", "bzip2", "none"]) {
        await t.step(`Nix's ${method} cache`, async () => {
          const dir = join(nix.root, `cache-${method}`);
          await nix.run("nix", [
            "copy",
            "--to",
            `file://${dir}?compression=${method}&secret-key=${sk}`,
            out,
          ]);
          const cacheInfo = parseCacheInfo(Deno.readTextFileSync(join(dir, "nix-cache-info")), dir);
          assertEquals(cacheInfo.storeDir, nix.storeDir);
          const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
            n.endsWith(".narinfo")
          );
          assertEquals(names.length, 2);
          for (const name of names) {
            const text = Deno.readTextFileSync(join(dir, name));
            const info = parseNarInfo(text, nix.storeDir, join(dir, name));
            assertEquals(printNarInfo(info), text);
            assertEquals(info.compression, method);
            assert(
              info.url.endsWith(".nar" + compressionExtension(parseCompressionMethod(method))),
            );
            assert(verifySignatures(fingerprintPath(info.storePath, info), info.sigs, [nixKey]));
            const file = await digest((await Deno.open(join(dir, info.url))).readable);
            assertEquals([file.hash.toNix32Prefixed(), file.size], [
              info.fileHash?.toNix32Prefixed(),
              info.fileSize,
            ]);
            const nar = await digest(
              decompress(
                parseCompressionMethod(info.compression),
                (await Deno.open(join(dir, info.url))).readable,
              ),
            );
            assert(nar.hash.equals(info.narHash));
            assertEquals(nar.size, info.narSize);
            if (info.storePath === out) {
              assert(info.deriver?.endsWith("-x.drv"));
              assertEquals(info.references.length, 1);
            } else {
              assert(info.ca?.startsWith("text:sha256:"));
            }
            if (method === "xz") xzInfos.push(info);
          }
        });
      }

      for (const method of ["zstd", "xz"] as WritableCompressionMethod[]) {
        await t.step(`kiln's ${method} cache, signed by kiln, substituted by Nix`, async () => {
          const source = join(nix.root, "cache-xz");
          const dir = join(nix.root, `kiln-${method}`);
          Deno.mkdirSync(join(dir, "nar"), { recursive: true });
          Deno.writeTextFileSync(
            join(dir, "nix-cache-info"),
            printCacheInfo({ storeDir: nix.storeDir }),
          );
          const { secretKey, publicKey } = generateKeyPair("kiln-test-1");
          const written: NarInfo[] = [];
          for (const info of xzInfos) {
            const nar = decompress("xz", (await Deno.open(join(source, info.url))).readable);
            const packed = new Uint8Array(await new Response(compress(method, nar)).arrayBuffer());
            const fileHash = hashBytes("sha256", packed);
            const url = `nar/${fileHash.toString("nix32")}.nar${compressionExtension(method)}`;
            Deno.writeFileSync(join(dir, url), packed);
            const kilnInfo: NarInfo = {
              ...info,
              url,
              compression: method,
              fileHash,
              fileSize: packed.length,
              sigs: [signFingerprint(secretKey, fingerprintPath(info.storePath, info))],
            };
            const hashPart = info.storePath.slice(nix.storeDir.length + 1).slice(0, 32);
            Deno.writeTextFileSync(join(dir, `${hashPart}.narinfo`), printNarInfo(kilnInfo));
            written.push(kilnInfo);
          }
          await nix.run("nix-store", ["--delete", out]);
          await nix.run("nix", [
            "copy",
            "--from",
            `file://${dir}`,
            "--option",
            "trusted-public-keys",
            printPublicKey(publicKey),
            out,
          ]);
          const [valid] = JSON.parse(await nix.run("nix", ["path-info", "--json", "--sigs", out]));
          const mine = written.find((i) => i.storePath === out)!;
          assertEquals(valid.narHash, mine.narHash.toString("sri"));
          assertEquals(valid.signatures, mine.sigs);
          await nix.run("nix-store", ["--verify-path", out]);
        });
      }
    } finally {
      nix.cleanup();
    }
  },
});
