#!/usr/bin/env bash
# Creates (once) a project-local SoftHSM2 token under <repo>/.hsm and prints the env to export.
# Idempotent: a second run finds the token and changes nothing. Never needs sudo.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HSM_DIR="${KEYSERVER_HSM_DIR:-$REPO_ROOT/.hsm}"
CONF="$HSM_DIR/softhsm2.conf"
TOKENS="$HSM_DIR/tokens"
LABEL="${PKCS11_TOKEN_LABEL:-keyserver}"
MODULE="${PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"

if ! command -v softhsm2-util >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y softhsm2 opensc >/dev/null
  else
    echo "softhsm2-util not found. Install it with: sudo apt-get install -y softhsm2 opensc" >&2
    exit 1
  fi
fi

umask 077
mkdir -p "$TOKENS"
chmod 700 "$HSM_DIR" "$TOKENS"

if [ ! -f "$CONF" ]; then
  # Written once; a second run leaves it untouched.
  cat >"$CONF" <<CONF
directories.tokendir = $TOKENS
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
fi
export SOFTHSM2_CONF="$CONF"

# PINs: taken from the environment the first time, otherwise generated once; kept in 0600 files.
# The files are never rewritten: the token's PINs do not change by re-running this script.
secret_file() {
  local file="$1" from_env="$2" name="$3"
  if [ ! -f "$file" ]; then
    if [ -n "$from_env" ]; then
      printf '%s' "$from_env" >"$file"
    else
      printf '%s' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$file"
    fi
  elif [ -n "$from_env" ] && [ "$(cat "$file")" != "$from_env" ]; then
    echo "warning: \$$name differs from $file; the token keeps the PIN in the file" >&2
  fi
  chmod 600 "$file"
}
secret_file "$HSM_DIR/pin" "${PKCS11_PIN:-}" PKCS11_PIN
secret_file "$HSM_DIR/so-pin" "${PKCS11_SO_PIN:-}" PKCS11_SO_PIN

# Look for the label in the token files rather than asking SoftHSM, which would touch its state files.
padded_label="$(printf '%-32s' "$LABEL")"
if grep -qaF -- "$padded_label" "$TOKENS"/*/token.object 2>/dev/null; then
  echo "# token '$LABEL' already initialised in $TOKENS" >&2
else
  softhsm2-util --init-token --free --label "$LABEL" \
    --pin "$(cat "$HSM_DIR/pin")" --so-pin "$(cat "$HSM_DIR/so-pin")" >/dev/null
  echo "# token '$LABEL' initialised in $TOKENS" >&2
fi

cat <<ENV
export SOFTHSM2_CONF=$CONF
export PKCS11_MODULE=$MODULE
export PKCS11_TOKEN_LABEL=$LABEL
export PKCS11_PIN_FILE=$HSM_DIR/pin
ENV
