# Sourced by the scripts here: sets $deno to the Deno on PATH, or to the one `npm ci` installs
# (the binary itself where it is there, not the Node.js shim in node_modules/.bin), running
# `npm ci` first when neither exists.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if command -v deno >/dev/null 2>&1; then
  deno=deno
else
  if [ ! -e "$root/node_modules/.bin/deno" ]; then
    (cd "$root" && npm ci --silent --no-audit --no-fund >&2)
  fi
  deno="$root/node_modules/.bin/deno"
  binary="$root/node_modules/deno/deno"
  if [ -x "$binary" ] && [ "$(head -c 4 "$binary")" = $'\x7fELF' ]; then deno="$binary"; fi
fi
