# Sourced by the scripts here: sets $deno to the Deno on PATH, or to the one `npm ci` puts into
# node_modules/.bin, running `npm ci` first when neither exists.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if command -v deno >/dev/null 2>&1; then
  deno=deno
else
  deno="$root/node_modules/.bin/deno"
  if [ ! -x "$deno" ]; then
    (cd "$root" && npm ci --silent --no-audit --no-fund >&2)
  fi
fi
