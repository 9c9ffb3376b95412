#!/usr/bin/env bash
# Fetches one npm registry package that is not in package-lock.json (the Node binary package, npm itself) with
# `npm pack` and checks it against the sha512 pinned in scripts/toolchain-integrity.txt before anything of it is
# unpacked or run. A tampered tarball, a man-in-the-middle of the registry or a mirror that serves a different
# package with a matching packument all stop here: the registry's own integrity field is not trusted.
#   pinned-pack.sh NAME@VERSION DIR     prints the path of the verified tarball in DIR
# Fails (exit 1, tarball removed) with "pinned-pack: no_pin ..." when the repository pins nothing for
# NAME@VERSION and "pinned-pack: integrity_mismatch ..." when the tarball differs from the pin.
set -euo pipefail
export LC_ALL=C
PINS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/toolchain-integrity.txt"
spec="${1:?usage: pinned-pack.sh NAME@VERSION DIR}"
dir="${2:?usage: pinned-pack.sh NAME@VERSION DIR}"
fail() { echo "pinned-pack: $*" >&2; exit 1; }

pin="$(awk -v s="$spec" '$1 == s { print $2; exit }' "$PINS")"
[ -n "$pin" ] || fail "no_pin: $PINS pins nothing for $spec (add its sha512, see the file's header)"
[[ "$pin" =~ ^sha512-[A-Za-z0-9+/]{86}==$ ]] || fail "bad_pin: the pin for $spec is not a sha512 integrity"
want="$(printf '%s' "${pin#sha512-}" | base64 -d | od -An -v -tx1 | tr -d ' \n')"

mkdir -p "$dir"
file="$(cd "$dir" && npm pack --silent "$spec" | tail -n1)"
[ -n "$file" ] && [ -f "$dir/$file" ] || fail "pack_failed: npm pack $spec gave no tarball"
got="$(sha512sum <"$dir/$file" | cut -d' ' -f1)"
if [ "$got" != "$want" ]; then
  rm -f "$dir/$file"
  fail "integrity_mismatch: $spec is sha512-$(printf "$(printf '%s' "$got" | sed 's/../\\x&/g')" | base64 | tr -d '\n'), the repository pins $pin"
fi
echo "$dir/$file"
