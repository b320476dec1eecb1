# Sourced by the scripts here (POSIX sh, so that scripts/kiln starts in /bin/sh): sets $deno to
# the Deno on PATH, or to the one `npm ci` installs (the binary itself where it is there, not the
# Node.js shim in node_modules/.bin), running `npm ci` first when neither exists. That choice is
# kept in node_modules/.kiln-deno (gone with node_modules), so a later run forks nothing. Sets
# $root to the checkout unless the caller has.
if [ -z "${root-}" ]; then root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; fi
if command -v deno >/dev/null 2>&1; then
  deno=deno
elif { read -r deno <"$root/node_modules/.kiln-deno" && [ -x "$root/$deno" ]; } 2>/dev/null; then
  deno="$root/$deno"
else
  if [ ! -e "$root/node_modules/.bin/deno" ]; then
    (cd "$root" && npm ci --silent --no-audit --no-fund >&2)
  fi
  deno=node_modules/.bin/deno
  if [ -x "$root/node_modules/deno/deno" ] &&
    [ "$(head -c 4 "$root/node_modules/deno/deno")" = "$(printf '\177ELF')" ]; then
    deno=node_modules/deno/deno
  fi
  { printf '%s\n' "$deno" >"$root/node_modules/.kiln-deno"; } 2>/dev/null || :
  deno="$root/$deno"
fi
