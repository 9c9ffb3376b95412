#!/usr/bin/env bash
# Installs OpenSSL's pkcs11-provider (the PKCS#11 module's OpenSSL 3 tests, tools/pkcs11-module/README.md).
# Debian bookworm has it in bookworm-backports only, so this adds that suite as a deb822 source on the URI of
# the machine's own Debian source (read here, never written into the repository) and installs only
# pkcs11-provider from it (-t); every other package keeps coming from the release. Run as root; idempotent,
# and quick when the package is there already.
set -euo pipefail

if dpkg-query -W -f='${Status}' pkcs11-provider 2>/dev/null | grep -q 'install ok installed'; then
  exit 0
fi
. /etc/os-release
suite="${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}-backports"
list=/etc/apt/sources.list.d/keyserver-backports.sources

# The URI and keyring of the enabled source that serves "$VERSION_CODENAME" itself (not -security/-updates).
debian_source() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v want="$VERSION_CODENAME" 'BEGIN { RS = ""; FS = "\n" }
      {
        uri = ""; key = ""; hit = 0; on = 1
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { split(substr($i, 6), u, " "); uri = u[1] }
          if ($i ~ /^Signed-By:/) { key = substr($i, 11); gsub(/^[ \t]+/, "", key) }
          if ($i ~ /^Enabled:[ \t]*no/) on = 0
          if ($i ~ /^Suites:/) { n = split(substr($i, 8), s, " "); for (j = 1; j <= n; j++) if (s[j] == want) hit = 1 }
        }
        if (hit && on && uri != "") { print uri "\t" key; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [options] URI suite components...
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk -v want="$VERSION_CODENAME" '$1 == "deb" && $3 == want { print $2 "\t"; exit }'
  done
}

if ! grep -rqs -- "$suite" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  found="$(debian_source | head -1)"
  uri="${found%%$'\t'*}"
  key="${found#*$'\t'}"
  if [ -z "$uri" ]; then
    echo "install-pkcs11-provider: no apt source for $VERSION_CODENAME found to add $suite to" >&2
    exit 1
  fi
  {
    echo "# Added by scripts/install-pkcs11-provider.sh (the Keyserver's pkcs11-provider); same archive as the release."
    echo "Types: deb"
    echo "URIs: $uri"
    echo "Suites: $suite"
    echo "Components: main"
    [ -n "$key" ] && echo "Signed-By: $key"
  } >"$list"
  echo "install-pkcs11-provider: added $suite ($list)"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -t "$suite" pkcs11-provider >/dev/null
echo "install-pkcs11-provider: $(dpkg-query -W -f='${Package} ${Version}' pkcs11-provider)"
