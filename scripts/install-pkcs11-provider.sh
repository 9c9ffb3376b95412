#!/usr/bin/env bash
# Installs OpenSSL's pkcs11-provider (the PKCS#11 module's OpenSSL 3 tests, tools/pkcs11-module/README.md, ADR 0031).
# Debian bookworm has it in bookworm-backports only, so this adds that suite as a deb822 source on the URI and
# keyring of the machine's own Debian source (read here, never written into the repository) and installs only
# pkcs11-provider from it (-t); every other package keeps coming from the release (backports are priority 100).
# Run as root; idempotent, and quick when the package is there already.
#   --print-source   print the source it would add (or nothing when the suite is configured), change nothing
# KS_APT_DIR and KS_OS_RELEASE (default /etc/apt, /etc/os-release) exist for the tests.
set -euo pipefail

apt_dir="${KS_APT_DIR:-/etc/apt}"
os_release="${KS_OS_RELEASE:-/etc/os-release}"
print_only=0
[ "${1:-}" = --print-source ] && print_only=1

if [ "$print_only" = 0 ] && dpkg-query -W -f='${Status}' pkcs11-provider 2>/dev/null | grep -q 'install ok installed'; then
  exit 0
fi
codename="$(. "$os_release" && echo "${VERSION_CODENAME:-}")"
if [ -z "$codename" ]; then
  echo "install-pkcs11-provider: no VERSION_CODENAME in $os_release" >&2
  exit 1
fi
suite="$codename-backports"
list="$apt_dir/sources.list.d/keyserver-backports.sources"

# "URI<TAB>keyring" of the first enabled deb source that serves "$codename" itself (not -security or -updates).
debian_source() {
  local f
  for f in "$apt_dir"/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v want="$codename" 'BEGIN { RS = ""; FS = "\n" }
      {
        uri = ""; key = ""; deb = 0; hit = 0; on = 1
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/) { n = split(substr($i, 7), t, " "); for (j = 1; j <= n; j++) if (t[j] == "deb") deb = 1 }
          if ($i ~ /^URIs:/) { split(substr($i, 6), u, " "); uri = u[1] }
          if ($i ~ /^Signed-By:/) { key = substr($i, 11); gsub(/^[ \t]+|[ \t]+$/, "", key) }
          if ($i ~ /^Enabled:[ \t]*no/) on = 0
          if ($i ~ /^Suites:/) { n = split(substr($i, 8), s, " "); for (j = 1; j <= n; j++) if (s[j] == want) hit = 1 }
        }
        if (deb && hit && on && uri != "") { print uri "\t" key; exit }
      }' "$f"
  done
  for f in "$apt_dir"/sources.list "$apt_dir"/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [option=value ...] URI suite component...
    sed -e 's/#.*//' "$f" | awk -v want="$codename" '
      $1 == "deb" {
        key = ""; opts = ""
        if ($2 ~ /^\[/) { line = $0; sub(/^[ \t]*deb[ \t]+\[/, "", line); opts = substr(line, 1, index(line, "]") - 1); sub(/^[^]]*\][ \t]*/, "", line); split(line, rest, /[ \t]+/) }
        else { rest[1] = $2; rest[2] = $3 }
        if (rest[2] != want) next
        n = split(opts, o, /[ \t]+/); for (j = 1; j <= n; j++) if (o[j] ~ /^signed-by=/) key = substr(o[j], 11)
        print rest[1] "\t" key; exit
      }'
  done
}

# apt reads sources.list, *.list and *.sources only; a comment naming the suite does not count.
# (grep -q answers 0 on a match even when one of the globs named no file.)
if ! grep -sqE "^[^#]*[[:space:]]$suite([[:space:]]|\$)" "$apt_dir"/sources.list "$apt_dir"/sources.list.d/*.list "$apt_dir"/sources.list.d/*.sources; then
  found="$(debian_source | head -1)"
  uri="${found%%$'\t'*}"
  key="${found#*$'\t'}"
  if [ -z "$uri" ]; then
    echo "install-pkcs11-provider: no apt source for $codename found to add $suite to" >&2
    exit 1
  fi
  stanza="$(
    echo "# Added by scripts/install-pkcs11-provider.sh (the Keyserver's pkcs11-provider); same archive as the release."
    echo "Types: deb"
    echo "URIs: $uri"
    echo "Suites: $suite"
    echo "Components: main"
    if [ -n "$key" ]; then echo "Signed-By: $key"; fi
  )"
  if [ "$print_only" = 1 ]; then
    echo "$stanza"
    exit 0
  fi
  echo "$stanza" >"$list"
  echo "install-pkcs11-provider: added $suite ($list)"
fi
[ "$print_only" = 1 ] && exit 0

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -t "$suite" pkcs11-provider >/dev/null
echo "install-pkcs11-provider: $(dpkg-query -W -f='${Package} ${Version}' pkcs11-provider)"
