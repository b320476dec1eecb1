# Derivation corpus for kiln's oracle tests (tests/derivation/_corpus.ts copies it next to the
# sources it names and runs nix-instantiate on it). Input, not a Nix artifact: edit freely.
let
  mk = attrs: derivation ({ system = "x86_64-linux"; builder = "/bin/sh"; } // attrs);
  hash = algo: s: builtins.hashString algo s;

  # Input sources: text files (one referring to another) and path literals copied into the store.
  srcText = builtins.toFile "hello.txt" "hello\n";
  srcRef = builtins.toFile "refers.sh" "cat ${srcText}\n";
  srcFile = ./x;
  srcDir = ./dir;

  fixed = builtins.listToAttrs (builtins.concatMap (algo: [
    { name = "flat-${algo}"; value = mk { name = "fixed-flat-${algo}"; outputHashMode = "flat"; outputHashAlgo = algo; outputHash = hash algo "flat ${algo}"; }; }
    { name = "rec-${algo}"; value = mk { name = "fixed-rec-${algo}"; outputHashMode = "recursive"; outputHashAlgo = algo; outputHash = hash algo "rec ${algo}"; }; }
  ]) [ "md5" "sha1" "sha256" "sha512" ]);
  fixedSri = mk { name = "fixed-sri"; outputHash = "sha256-iUUXyRY8iW7DGirb0zwGgf1fRbLA7wimTJKgP7l/OQ8="; outputHashMode = "recursive"; };
  fixedNix32 = mk { name = "fixed-nix32"; outputHashAlgo = "sha1"; outputHash = "vw46m23bizj4n8afrc0fj19wrp7mj3c0"; };
  fixedWithInput = mk { name = "fixed-with-input"; outputHashAlgo = "sha256"; outputHash = hash "sha256" "fwi"; dep = chainTop; };

  strings = [
    (mk { name = "strings"; quote = "say \"hi\""; backslash = "a\\b\\\\c\\"; newline = "l1\nl2\n"; tab = "a\tb";
          cr = "a\rb\r\n"; unicode = "héllo wörld ☃ 😀 日本語"; empty = ""; dollar = "\${x}";
          mixed = "\"\\\n\r\t\"\\"; "key with \"quotes\" and \\ and spaces" = "v";
          int = 42; yes = true; no = false; nothing = null; list = [ "a" 1 true null "b c" ];
          args = [ "-c" "echo \"$quote\"" "" "tab\there" "ü" "back\\slash" "new\nline" ]; })
    (mk { name = "builder-escapes"; builder = "/bin/my \"odd\" \\builder\n"; args = [ ]; })
    (mk { name = "weird-name_+?=.v1"; empty1 = ""; empty2 = ""; })
    (mk { name = "invalid-utf8"; half = builtins.substring 0 1 "é"; cut = builtins.substring 0 2 "😀"; })
    (mk { name = "control-chars"; ctl = "bell esc nul-free"; del = "ab"; high = "€𝄞"; })
  ];

  passAsFile = [
    (mk { name = "pass-as-file"; passAsFile = [ "big" "other" ]; big = "lots of\ntext\n"; other = "x\ty"; })
    (mk { name = "pass-as-file-one"; passAsFile = [ "only" ]; only = "\"quoted\"\\"; })
  ];

  structured = [
    (mk { name = "structured"; __structuredAttrs = true;
          nested = { a = [ 1 2 { b = null; c = true; d = false; } ]; "quote\"key" = "v\n\t\r\\"; "10" = 1; "9" = 2; };
          big = 123456789012345678; neg = -3; float = 1.5; small = 0.000001; tiny = 1.0e-7; whole = 2.0;
          unicode = "ü😀"; empty = ""; emptyList = [ ]; emptySet = { };
          outputs = [ "out" "lib" ]; })
    (mk { name = "structured-deps"; __structuredAttrs = true; deps = [ multiTop.dev chainTop ];
          exportReferencesGraph = { graph = [ chainTop ]; }; outputChecks.out.maxSize = 1000; })
    (mk { name = "structured-fixed"; __structuredAttrs = true; outputHashMode = "recursive";
          outputHashAlgo = "sha512"; outputHash = hash "sha512" "sf"; })
  ];

  # A chain of depth 9 and a chain of multi-output derivations, each using the previous one's dev.
  chain = builtins.genList (i: i) 9;
  chainTop = builtins.foldl' (prev: i: mk { name = "chain-${toString i}"; dep = "${prev}"; n = i; })
    (mk { name = "chain-base"; src = srcText; }) chain;
  multiTop = builtins.foldl' (prev: i: mk { name = "multi-${toString i}"; outputs = [ "out" "dev" "lib" ]; dep = prev.dev; })
    (mk { name = "multi-base"; outputs = [ "out" "dev" "lib" "doc" ]; }) (builtins.genList (i: i) 5);

  users = [
    (mk { name = "uses-dev-lib"; a = multiTop.dev; b = multiTop.lib; })
    (mk { name = "uses-all-outputs"; a = multiTop.out; b = multiTop.dev; c = multiTop.lib; })
    (mk { name = "uses-fixed"; src = fixed.rec-sha256; other = fixed.flat-md5; })
    (mk { name = "uses-fixed-with-input"; src = fixedWithInput; })
    (mk { name = "uses-sources"; a = srcText; b = srcRef; c = srcFile; d = srcDir; dep = chainTop; })
    (mk { name = "uses-drvpath-deep"; d = multiTop.drvPath; })
    (mk { name = "uses-drvpath-shallow"; d = builtins.unsafeDiscardOutputDependency chainTop.drvPath; })
    (mk { name = "lib-first"; outputs = [ "lib" "out" ]; })
    (mk { name = "bin-only"; outputs = [ "bin" ]; a = multiTop.doc or multiTop.lib; })
    (mk { name = "many-outputs"; outputs = [ "out" "bin" "dev" "doc" "man" "info" ]; uses = fixedSri; })
  ];

  variants = builtins.genList (i: mk {
    name = "variant-${toString i}";
    value = builtins.substring 0 i "\"\\\n\r\t abc\"\\ defghijklm" + (if i > 10 then " é😀" else "");
    args = builtins.genList (j: "arg ${toString j}") i;
  }) 20;
in
  builtins.attrValues fixed ++ [ fixedSri fixedNix32 fixedWithInput chainTop multiTop ]
  ++ strings ++ passAsFile ++ structured ++ users ++ variants
