# Builder script for the example graph. It uses only shell builtins: the sandbox shows a builder
# nothing but /bin/sh and the derivation's inputs. $out is a file: this node's line, then the
# lines of every dependency, then (at the bottom of the graph) the greeting from the source.
copy() { while IFS= read -r line; do echo "$line"; done <"$1"; }
{
  echo "$name: $message"
  for dep in $deps; do copy "$dep"; done
  if [ -n "$src" ]; then copy "$src/greeting.txt"; fi
} >"$out"
