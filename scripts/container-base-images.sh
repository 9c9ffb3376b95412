#!/usr/bin/env bash
# Builds the base images the Dockerfile and docker-compose.yml need, for a Docker engine that reaches no
# image registry (CI here, air-gapped sites): only the Debian package mirror the machine's apt already uses
# and the npm registry are needed.
#   keyserver-base/debian:bookworm     debootstrap --variant=minbase rootfs (+ ca-certificates, the machine's
#                                      local CAs from /usr/local/share/ca-certificates), imported
#   keyserver-base/node:<.nvmrc>       that rootfs + the Node LTS and pinned npm (scripts/node-lts.sh)
#   keyserver-base/postgres:15         that rootfs + Debian's postgresql-15 (scripts/container/postgres.Dockerfile)
# Prints the NODE_IMAGE=, DEBIAN_IMAGE=, POSTGRES_IMAGE= lines to put into .env (or the environment).
# Needs root (debootstrap), debootstrap, docker. The rootfs tarball is cached under KEYSERVER_CACHE.
# DEBIAN_MIRROR overrides the mirror read from /etc/apt/sources.list and /etc/apt/sources.list.d/.
# The rootfs is verified: debootstrap checks the mirror's Release signature against the Debian archive keyring
# (DEBIAN_KEYRING, default /usr/share/keyrings/debian-archive-keyring.gpg from the package debian-archive-keyring)
# and every package against the signed Release; a missing keyring stops the build instead of being skipped (plain
# debootstrap only warns). Inside the images apt checks the same way with the keyring the rootfs brings. The Node
# LTS and npm must match scripts/toolchain-integrity.txt (scripts/node-lts.sh).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RELEASE="${DEBIAN_RELEASE:-bookworm}"
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/keyserver-ci; else default_cache="${XDG_CACHE_HOME:-$HOME/.cache}/keyserver"; fi
export KEYSERVER_CACHE="${KEYSERVER_CACHE:-$default_cache}"
DOCKER="${DOCKER:-docker}"
log() { echo "base-images: $*" >&2; }

# The first Debian archive URI apt is configured with (one-line and deb822 formats), and its security archive.
apt_uris() {
  local suite_re="$1"
  {
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      awk -v re="$suite_re" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) ~ re) print $i }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk -v re="$suite_re" '
        function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no") { n = split(suites, s, " "); for (j = 1; j <= n; j++) if (s[j] ~ re) { split(uris, u, " "); print u[1]; break } } types = suites = uris = ""; enabled = "" }
        /^[ \t]*$/ { flush(); next }
        /^#/ { next }
        tolower($1) == "types:" { $1 = ""; types = $0 }
        tolower($1) == "suites:" { $1 = ""; suites = $0 }
        tolower($1) == "uris:" { $1 = ""; uris = $0; sub(/^ +/, "", uris) }
        tolower($1) == "enabled:" { enabled = tolower($2) }
        END { flush() }' "$f"
    done
  } | head -n1
}
MIRROR="${DEBIAN_MIRROR:-$(apt_uris "^$RELEASE\$")}"
SECURITY="${DEBIAN_SECURITY_MIRROR:-$(apt_uris "^$RELEASE-security\$")}"
[ -n "$MIRROR" ] || { log "no Debian mirror for $RELEASE in the apt configuration; set DEBIAN_MIRROR"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap is missing (apt-get install debootstrap)"; exit 1; }
KEYRING="${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"
[ -s "$KEYRING" ] || { log "no_keyring: $KEYRING is missing (apt-get install debian-archive-keyring, or set DEBIAN_KEYRING); an unverified rootfs is never built"; exit 1; }
command -v gpgv >/dev/null || { log "no_gpgv: gpgv is missing (apt-get install gpgv); debootstrap needs it to check the Release signature"; exit 1; }

DEBIAN_IMAGE=keyserver-base/debian:$RELEASE
NODE_VERSION="$(tr -d ' \n' <"$REPO_ROOT/.nvmrc")"
NODE_IMAGE=keyserver-base/node:$NODE_VERSION-$RELEASE
POSTGRES_IMAGE=keyserver-base/postgres:15-$RELEASE

# The rootfs depends on the mirror, the release, the keyring that vouched for it and the local CAs: the cache key
# covers them all (v3: rootfs made before the signature check was enforced are not reused).
local_cas=(/usr/local/share/ca-certificates/*.crt)
[ -e "${local_cas[0]}" ] || local_cas=()
key="$( { echo "$RELEASE $MIRROR $SECURITY v3"; sha256sum <"$KEYRING"; [ ${#local_cas[@]} -eq 0 ] || cat "${local_cas[@]}"; } | sha256sum | cut -c1-16)"
ROOTFS_TAR="$KEYSERVER_CACHE/rootfs-$RELEASE-minbase-$key.tar"
mkdir -p "$KEYSERVER_CACHE"

if [ ! -s "$ROOTFS_TAR" ]; then
  rootfs="$(mktemp -d "$KEYSERVER_CACHE/.rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  log "debootstrap $RELEASE (minbase) from the apt mirror"
  debootstrap --force-check-gpg --keyring="$KEYRING" --variant=minbase --include=ca-certificates "$RELEASE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; rm -f "$rootfs.log"; log "debootstrap failed (a Release the keyring $KEYRING does not vouch for fails here)"; exit 1; }
  grep -q '^I: Valid Release signature' "$rootfs.log" || { log "unverified_release: debootstrap did not report a valid Release signature"; rm -f "$rootfs.log"; exit 1; }
  rm -f "$rootfs.log"
  {
    echo "deb $MIRROR $RELEASE main"
    echo "deb $MIRROR $RELEASE-updates main"
    [ -z "$SECURITY" ] || echo "deb $SECURITY $RELEASE-security main"
  } >"$rootfs/etc/apt/sources.list"
  if [ ${#local_cas[@]} -gt 0 ]; then
    cp "${local_cas[@]}" "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
  fi
  # Like the official slim images: no apt lists, caches or docs, no recommends.
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90keyserver-no-recommends"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  tar --numeric-owner -C "$rootfs" -cf "$ROOTFS_TAR.tmp" .
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$rootfs"
  trap - EXIT
fi

image_id() { "$DOCKER" image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
label_of() { "$DOCKER" image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }

if [ "$(label_of "$DEBIAN_IMAGE" keyserver.rootfs)" != "$key" ]; then
  log "importing $DEBIAN_IMAGE"
  "$DOCKER" import --change "LABEL keyserver.rootfs=$key" --change 'CMD ["bash"]' "$ROOTFS_TAR" "$DEBIAN_IMAGE" >/dev/null
fi
debian_id="$(image_id "$DEBIAN_IMAGE")"

build() { # image dockerfile context
  local image="$1" dockerfile="$2" context="$3" stamp="$4"
  if [ "$(label_of "$image" keyserver.base)" = "$stamp" ]; then return; fi
  log "building $image"
  DOCKER_BUILDKIT=0 "$DOCKER" build -q --network host -f "$dockerfile" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" \
    --label "keyserver.base=$stamp" -t "$image" "$context" >/dev/null
}

node_prefix="$(bash "$REPO_ROOT/scripts/node-lts.sh")"
# The stamp carries the pins the prefix was verified against (its .complete): a base image made from an unverified
# or differently pinned prefix is rebuilt.
build "$NODE_IMAGE" "$REPO_ROOT/scripts/container/node-base.Dockerfile" "$node_prefix" \
  "$debian_id $(basename "$node_prefix") $(cat "$REPO_ROOT/scripts/container/node-base.Dockerfile" "$node_prefix/.complete" | sha256sum | cut -c1-16)"
build "$POSTGRES_IMAGE" "$REPO_ROOT/scripts/container/postgres.Dockerfile" "$REPO_ROOT/scripts/container" \
  "$debian_id $(cat "$REPO_ROOT/scripts/container/postgres.Dockerfile" "$REPO_ROOT/scripts/container/postgres-entrypoint.sh" | sha256sum | cut -c1-16)"

echo "NODE_IMAGE=$NODE_IMAGE"
echo "DEBIAN_IMAGE=$DEBIAN_IMAGE"
echo "POSTGRES_IMAGE=$POSTGRES_IMAGE"
