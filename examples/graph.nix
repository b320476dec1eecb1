# The example graph: a source and five derivations, a small diamond on top of a chain.
# Regenerate graph.json from it with scripts/gen-example (needs real Nix).
let
  src = builtins.path { path = ./src; name = "example-src"; };
  mk = name: message: deps: derivation {
    inherit name message;
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-e" "${src}/build.sh" ];
    deps = deps;
    src = if deps == [ ] then src else "";
  };
  base = mk "base" "the foundation" [ ];
  left = mk "left" "one side" [ base ];
  right = mk "right" "the other side" [ base ];
  top = mk "top" "both sides" [ left right ];
in
  mk "example" "the whole graph" [ top ]
