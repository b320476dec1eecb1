/**
 * kiln against real Nix 2.8: a corpus of derivations instantiated by Nix, built by both, compared
 * by output path, NAR hash and references, and by exit status for the failing ones.
 *
 * Both must see the same logical store dir (the NixSandbox's `<tmp>/store`), while each keeps its
 * own files: Nix builds unsandboxed (Debian's Nix cannot sandbox) in that directory itself, kiln
 * keeps its store under a separate physical root and builds in its bwrap sandbox, where the
 * logical paths are bind-mounted from that root. The builders only use shell builtins and
 * coreutils by absolute path, and never write the build directory's path into an output.
 */

import { probeSandbox } from "../../lib/sandbox/mod.ts";
import { parseHash } from "../../lib/hashing/mod.ts";
import { assertEquals } from "../_assert.ts";
import { KilnStore } from "../_kiln.ts";
import { nixAvailable, NixSandbox } from "../_nix.ts";
import { withNixAndKiln } from "./_drv.ts";

const ignore = !nixAvailable || !(await probeSandbox()).ok;

const CORPUS = `
let
  mk = name: script: attrs: derivation ({ inherit name; system = "x86_64-linux";
    builder = "/bin/sh"; args = ["-c" script]; } // attrs);
  texts = builtins.genList (i: mk "text-\${toString i}" "echo number \${toString i} > $out" {}) 10;
  self = mk "self" "echo $out > $out" {};
  multi = mk "multi" "echo $dev > $out; echo $doc > $dev; echo $doc > $doc" { outputs = ["out" "dev" "doc"]; };
  tree = mk "tree" ''
    /bin/mkdir -p $out/a/b $out/empty
    echo hello > $out/a/b/file
    printf '#!/bin/sh\\necho hi\\n' > $out/a/run; /bin/chmod +x $out/a/run
    /bin/ln -s a/b/file $out/link
    /bin/ln -s $out/a $out/abs
    : > $out/zero
  '' {};
  chain = builtins.genList (i: mk "chain-\${toString i}" "echo ${"$"}{builtins.elemAt texts i} > $out" {}) 5;
  partial = mk "partial" "echo ${"$"}{builtins.elemAt texts 0} > $out" { other = builtins.elemAt texts 1; };
  viaName = mk "via-name" "/bin/mkdir $out; : > $out/\${builtins.baseNameOf self}" {};
  viaLink = mk "via-link" "/bin/ln -s \${self} $out" {};
  deep = mk "deep" "echo \${multi.dev} > $out" {};
  big = mk "big" "i=0; while [ $i -lt 3000 ]; do echo line $i \${self}; i=$((i+1)); done > $out" {};
  fixedFlat = mk "fixed-flat" "echo x > $out" { outputHashMode = "flat"; outputHashAlgo = "sha256";
    outputHash = "73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac"; };
  fixedNar = mk "fixed-nar" "/bin/mkdir $out; echo y > $out/y" { outputHashMode = "recursive";
    outputHash = "sha256-/xXtDSiIOnsnZsw+f3FCwnJF0Z3nGhsSryURdTqGKJk="; };
  fixedSha1 = mk "fixed-sha1" "echo x > $out" { outputHashMode = "flat"; outputHashAlgo = "sha1";
    outputHash = "6fcf9dfbd479ed82697fee719b9f8c610a11ff2a"; };
  passFile = mk "pass-file" "/bin/cat $textPath > $out" { text = "passed as a file"; passAsFile = ["text"]; };
  graph = mk "graph" "/bin/cat refs > $out" { exportReferencesGraph = ["refs" deep]; };
  structured = mk "structured" "/bin/cat .attrs.json > \${builtins.placeholder "out"}"
    { __structuredAttrs = true; list = [1 "two" true]; };
  env = mk "env" "echo $NIX_STORE $HOME $PATH $NIX_BUILD_CORES $TERM $custom > $out" { custom = "value"; };
  allowed = mk "allowed" "echo \${self} > $out" { allowedReferences = [ self ]; };
  disallowedOk = mk "disallowed-ok" "echo none > $out" { disallowedReferences = [ self ]; };
  # Nix strings are bytes: half characters in the builder's arguments, environment and files.
  bytes = mk "bytes" ("printf '%s|%s' \\"$half\\" '" + builtins.substring 0 1 "é" + "' > $out")
    { half = builtins.substring 0 2 "😀"; };
  bytesFile = mk "bytes-file" "/bin/cat $textPath > $out"
    { text = builtins.substring 0 1 "é"; passAsFile = ["text"]; };
  many = builtins.genList (i: mk "many-\${toString i}" "echo \${toString (i * i)} \${deep} > $out" {}) 8;
in {
  good = texts ++ chain ++ many ++ [ self multi tree partial viaName viaLink deep big fixedFlat
    fixedNar fixedSha1 passFile graph structured env allowed disallowedOk ];
  # Added as ATerm: Nix 2.8's JSON does not carry bytes that are not UTF-8.
  bytes = [ bytes bytesFile ];
  bad = [
    (mk "exit-one" "echo failing; exit 1" {})
    (mk "wrong-hash" "echo x > $out" { outputHashMode = "flat"; outputHashAlgo = "sha256";
      outputHash = "0000000000000000000000000000000000000000000000000000000000000000"; })
    (mk "fixed-fails" "exit 2" { outputHashMode = "flat"; outputHashAlgo = "sha256";
      outputHash = "1111111111111111111111111111111111111111111111111111111111111111"; })
    (mk "no-output" "echo nothing" {})
    (mk "cycle" "echo $dev > $out; echo $out > $dev" { outputs = ["out" "dev"]; })
    (mk "not-allowed" "echo \${self} > $out" { allowedReferences = []; })
  ];
}
`;

interface Info {
  narHash: string;
  references: string[];
}

async function nixInfos(nix: NixSandbox, paths: string[]): Promise<Map<string, Info>> {
  const json = JSON.parse(await nix.run("nix", ["path-info", "--json", ...paths])) as {
    path: string;
    narHash: string;
    references: string[];
  }[];
  return new Map(json.map((i) => [i.path, {
    narHash: parseHash(i.narHash).toString("sri"),
    references: [...i.references].sort(),
  }]));
}

async function kilnInfos(kiln: KilnStore, paths: string[]): Promise<Map<string, Info>> {
  const json = JSON.parse(await kiln.ok(["store", "path-info", "--json", ...paths])) as Record<
    string,
    Info
  >;
  return new Map(
    Object.entries(json).map(([path, i]) => [path, {
      narHash: i.narHash,
      references: [...i.references].sort(),
    }]),
  );
}

Deno.test({
  name: "kiln build matches Nix 2.8 on a corpus: paths, NAR hashes, references, exit codes",
  ignore,
  fn: () =>
    withNixAndKiln(async (nix, kiln) => {
      const file = `${nix.root}/corpus.nix`;
      Deno.writeTextFileSync(file, CORPUS);
      const good = (await nix.run("nix-instantiate", [file, "-A", "good"])).trim().split("\n");
      const bad = (await nix.run("nix-instantiate", [file, "-A", "bad"])).trim().split("\n");
      assertEquals(good.length + bad.length >= 40, true, `corpus of ${good.length + bad.length}`);
      const document = await nix.run("nix", ["show-derivation", "-r", ...good, ...bad]);
      await kiln.ok(["derivation", "add"], document);

      const bytes = (await nix.run("nix-instantiate", [file, "-A", "bytes"])).trim().split("\n");
      for (const drv of bytes) await kiln.ok(["derivation", "add"], Deno.readFileSync(drv));
      const built = [...good, ...bytes];

      const nixOut = (await nix.run("nix-store", ["--realise", ...built])).trim().split("\n");
      const kilnOut = (await kiln.ok(["build", "--sandbox", ...built])).trim().split("\n");
      assertEquals(kilnOut.sort(), nixOut.sort());
      const [n, k] = await Promise.all([nixInfos(nix, nixOut), kilnInfos(kiln, kilnOut)]);
      for (const path of nixOut) assertEquals(k.get(path), n.get(path), path);

      for (const drv of bad) {
        const [nixRun, kilnRun] = await Promise.all([
          nix.runRaw("nix-store", ["--realise", drv]),
          kiln.run(["build", "--sandbox", drv]),
        ]);
        assertEquals(kilnRun.code, nixRun.code, `${drv}:\n${nixRun.stderr}\n${kilnRun.stderr}`);
      }
    }),
});
