#!/usr/bin/env bash
# Writes the env file docker-compose.yml reads (default: .env next to it) with fresh random secrets.
# Run once; an existing file is never changed (its secrets protect the data already on the volumes).
# Values already in the environment win, e.g. `CLIENT_SECRET=... KEYCLIENT_PORT=18080 scripts/compose-env.sh`.
# The file is git-ignored and mode 0600; .env.example lists every variable.
set -euo pipefail
export LC_ALL=C  # byte-wise character classes in the checks below

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$REPO_ROOT/.env}"

if [ -e "$OUT" ]; then
  echo "compose-env: $OUT exists, left unchanged" >&2
  exit 0
fi

random_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
random_b64() { head -c "$1" /dev/urandom | base64 | tr -d '\n'; }

# The keyclient's client secret must be the one the identity provider knows. With the bundled emulator that is
# the demo tenant's keyserverApp secret (public demo data in config/demo-tenant.json); with Entra ID, pass yours.
demo_client_secret() {
  sed -n '/"keyserverApp"/,/}/s/^ *"clientSecret": *"\([^"]*\)".*/\1/p' "$REPO_ROOT/config/demo-tenant.json" | head -n1
}

client_secret="${CLIENT_SECRET:-$(demo_client_secret)}"
if [ -z "$client_secret" ]; then
  echo "compose-env: no CLIENT_SECRET given and none found in config/demo-tenant.json" >&2
  exit 1
fi

# Values go into a KEY=VALUE file and into URLs: refuse anything that could break out of either.
check() {
  local name="$1" value="$2" pattern="$3"
  if ! [[ "$value" =~ $pattern ]]; then
    echo "compose-env: $name has characters that are not allowed here (allowed: $pattern)" >&2
    exit 1
  fi
}
[ -z "${POSTGRES_PASSWORD:-}" ] || check POSTGRES_PASSWORD "$POSTGRES_PASSWORD" '^[A-Za-z0-9._~-]{16,}$'
[ -z "${KEYCLIENT_DB_PASSWORD:-}" ] || check KEYCLIENT_DB_PASSWORD "$KEYCLIENT_DB_PASSWORD" '^[A-Za-z0-9._~-]{16,}$'
[ -z "${SESSION_ENCRYPTION_KEY:-}" ] || check SESSION_ENCRYPTION_KEY "$SESSION_ENCRYPTION_KEY" '^[A-Za-z0-9+/]{43}=$'
check CLIENT_SECRET "$client_secret" '^[!-~]+$'
for var in EMULATOR_PORT KEYSERVER_API_PORT KEYCLIENT_PORT POSTGRES_PORT KEYSERVER_API_METRICS_PORT KEYCLIENT_METRICS_PORT; do
  [ -z "${!var:-}" ] || check "$var" "${!var}" '^[1-9][0-9]{0,4}$'
done
[ -z "${KEYCLIENT_HOST:-}" ] || check KEYCLIENT_HOST "$KEYCLIENT_HOST" '^[A-Za-z0-9.:-]+$'
for var in NODE_IMAGE DEBIAN_IMAGE POSTGRES_IMAGE LOG_LEVEL; do
  [ -z "${!var:-}" ] || check "$var" "${!var}" '^[A-Za-z0-9._/:@-]+$'
done

umask 077
tmp="$(mktemp "$OUT.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<ENV
# Written by scripts/compose-env.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ). Secrets: never commit this file.
POSTGRES_PASSWORD=${POSTGRES_PASSWORD:-$(random_hex 24)}
SESSION_ENCRYPTION_KEY=${SESSION_ENCRYPTION_KEY:-$(random_b64 32)}
KEYCLIENT_DB_PASSWORD=${KEYCLIENT_DB_PASSWORD:-$(random_hex 24)}
CLIENT_SECRET=$client_secret
EMULATOR_PORT=${EMULATOR_PORT:-4011}
KEYSERVER_API_PORT=${KEYSERVER_API_PORT:-3000}
KEYCLIENT_PORT=${KEYCLIENT_PORT:-8080}
KEYCLIENT_HOST=${KEYCLIENT_HOST:-127.0.0.1}
POSTGRES_PORT=${POSTGRES_PORT:-55432}
KEYSERVER_API_METRICS_PORT=${KEYSERVER_API_METRICS_PORT:-9464}
KEYCLIENT_METRICS_PORT=${KEYCLIENT_METRICS_PORT:-9465}
ENV
for var in NODE_IMAGE DEBIAN_IMAGE POSTGRES_IMAGE LOG_LEVEL; do
  if [ -n "${!var:-}" ]; then printf '%s=%s\n' "$var" "${!var}" >>"$tmp"; fi
done
chmod 600 "$tmp"
mv "$tmp" "$OUT"
trap - EXIT
echo "compose-env: wrote $OUT" >&2
