# Builder script for the example graph: concatenates its inputs into $out.
set -e
mkdir -p "$out"
echo "$name: $message" > "$out/message"
for dep in $deps; do cat "$dep/message" >> "$out/message"; done
if [ -n "$src" ]; then cat "$src/greeting.txt" >> "$out/message"; fi
