#!/usr/bin/env bash
# `npm run test:containers`: builds the images, starts the stack with docker-compose.yml on free ports (so it
# runs next to `npm start`), smoke-tests it, restarts it with `down && up` and checks that data and the HSM
# token survived, checks what the images carry, then removes the stack and its volumes (images are kept as
# build cache). Needs a Docker engine (DOCKER_HOST) and Compose v2 (`docker compose`) or v1 (`docker-compose`).
# Base images: KEYSERVER_BASE_IMAGES=local builds them from a Debian rootfs and the Node LTS from npm
# (scripts/container-base-images.sh; the default as root with debootstrap), =registry pulls the official ones.
set -euo pipefail
cd "$(dirname "$0")/.."

PROJECT="${KEYSERVER_COMPOSE_PROJECT:-keyserver-ctest}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/keyserver-ctest.XXXXXX")"
ENV_FILE="$WORK/compose.env"
STARTED=$(date +%s)
log() { echo "test:containers [$(( $(date +%s) - STARTED ))s] $*"; }
die() { echo "test:containers: FAILED: $*" >&2; exit 1; }

if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  COMPOSE=(docker-compose)
else
  die "neither 'docker compose' (v2) nor 'docker-compose' (v1) is installed"
fi
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-default})"
compose() { "${COMPOSE[@]}" --env-file "$ENV_FILE" -p "$PROJECT" "$@"; }

cleanup() {
  local rc=$?
  if [ $rc -ne 0 ] && [ -f "$ENV_FILE" ]; then
    echo "--- compose ps / logs (last lines) ---" >&2
    compose ps >&2 || true
    compose logs --no-color --tail 60 >&2 || true
  fi
  if [ -f "$ENV_FILE" ]; then compose down -v --remove-orphans >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# Free ports on the host (host networking), chosen now so nothing else (npm start, other tests) holds them.
read -r EMULATOR_PORT KEYSERVER_API_PORT KEYCLIENT_PORT POSTGRES_PORT KEYSERVER_API_METRICS_PORT KEYCLIENT_METRICS_PORT < <(node -e '
  const net = require("node:net");
  const one = () => new Promise((res, rej) => { const s = net.createServer(); s.once("error", rej);
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); }); });
  (async () => { const ps = new Set(); while (ps.size < 6) ps.add(await one()); console.log([...ps].join(" ")); })();')
export EMULATOR_PORT KEYSERVER_API_PORT KEYCLIENT_PORT POSTGRES_PORT KEYSERVER_API_METRICS_PORT KEYCLIENT_METRICS_PORT KEYCLIENT_HOST=127.0.0.1

mode="${KEYSERVER_BASE_IMAGES:-}"
if [ -z "$mode" ]; then
  if [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null; then mode=local; else mode=registry; fi
fi
# Provenance of the rootfs (scripts/container-base-images.sh): the mirror is plain http, so its signature is all
# that stands between a man-in-the-middle and the images. A Release signed by a key the keyring does not hold, and
# a machine without the keyring, must build no rootfs at all (debootstrap alone only warns about a missing keyring).
untrusted_rootfs() { # name keyring expected-message
  local cache="$WORK/untrusted-$1" out
  mkdir -p "$cache"
  out="$(KEYSERVER_CACHE="$cache" DEBIAN_KEYRING="$2" DOCKER=false timeout 900 bash scripts/container-base-images.sh 2>&1)" \
    && die "provenance ($1): the base images were built"
  [ -z "$(find "$cache" -name 'rootfs-*.tar')" ] || die "provenance ($1): a rootfs was built: $(echo "$out" | tail -3)"
  grep -q -- "$3" <<<"$out" || die "provenance ($1): expected '$3', got: $(echo "$out" | tail -3)"
  log "provenance ($1): refused ($3)"
}
if [ "$mode" = local ]; then
  untrusted_rootfs wrong-keyring /usr/share/keyrings/debian-archive-removed-keys.gpg 'Release signed by unknown key'
  untrusted_rootfs no-keyring "$WORK/no-such-keyring.gpg" 'no_keyring'
  log "base images from a Debian rootfs and the Node LTS from npm"
  base="$(bash scripts/container-base-images.sh)" || die "building the base images"
  eval "export $(echo "$base" | tr '\n' ' ')"
fi
bash scripts/compose-env.sh "$ENV_FILE" 2>/dev/null
log "compose: ${COMPOSE[*]}; ports emulator $EMULATOR_PORT, api $KEYSERVER_API_PORT, keyclient $KEYCLIENT_PORT, postgres $POSTGRES_PORT"

compose down -v --remove-orphans >/dev/null 2>&1 || true
log "building the images"
timeout 2400 "${COMPOSE[@]}" --env-file "$ENV_FILE" -p "$PROJECT" build >"$WORK/build.log" 2>&1 || { tail -60 "$WORK/build.log" >&2; die "image build"; }
log "images built"

# Waits until every long-running service is healthy and the init job exited 0.
wait_healthy() {
  local deadline=$(( $(date +%s) + 300 )) svc id state
  while :; do
    local pending=()
    for svc in postgres entra-emulator keyserver-api keyclient; do
      id="$(compose ps -q "$svc" 2>/dev/null || true)"
      state="$( [ -n "$id" ] && docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id" 2>/dev/null || echo missing)"
      [ "$state" = running/healthy ] || pending+=("$svc=$state")
    done
    # -a: Compose v2 lists exited containers only with it.
    id="$(compose ps -a -q keyserver-init 2>/dev/null || true)"
    state="$( [ -n "$id" ] && docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$id" 2>/dev/null || echo missing)"
    case "$state" in "exited 0") ;; exited*) die "keyserver-init exited: $state" ;; *) pending+=("keyserver-init=$state") ;; esac
    [ ${#pending[@]} -eq 0 ] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || die "not healthy after 300 s: ${pending[*]}"
    sleep 2
  done
}

log "starting the stack"
compose up -d >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; die "compose up"; }
wait_healthy
log "stack healthy"
node scripts/container/smoke.mjs first "$ENV_FILE" "$WORK/state.json"

# What the images carry: no dev tooling, no demo secrets outside the emulator and seed images, non-root.
image_of() { docker inspect -f '{{.Config.Image}}' "$(compose ps -q "$1")"; }
probe() { docker run --rm --network none --entrypoint sh "$1" -c "$2"; }
lean='for p in @angular/core @nx/js nx prisma typescript jest @prisma/dev effect; do [ ! -e node_modules/$p ] || { echo "has node_modules/$p"; exit 1; }; done
      ! command -v npm >/dev/null || { echo "has npm"; exit 1; }
      [ "$(id -u)" = 1000 ] || { echo "runs as uid $(id -u)"; exit 1; }
      [ -z "$(find / -xdev -name "*.key.pem" 2>/dev/null)" ] || { echo "has a demo private key"; exit 1; }
      [ -z "$(find / -xdev -perm /6000 -type f 2>/dev/null)" ] || { echo "has setuid/setgid files: $(find / -xdev -perm /6000 -type f)"; exit 1; }
      # No secret in any layer: env files, key stores, SoftHSM tokens or PINs, the demo credentials, PEM private keys.
      hits="$(find / -xdev \( -name ".env" -o -name ".env.*" -o -name "*.p12" -o -name "*.pfx" -o -name "*.jks" -o -name "token.object" \
        -o -name "so-pin" -o -name "demo-credentials" -o -path "/var/lib/keyserver/hsm/*" -o -path "/var/lib/softhsm/tokens/*" \) 2>/dev/null)"
      [ -z "$hits" ] || { echo "carries secrets: $hits"; exit 1; }
      pem="$(grep -rlIE --exclude-dir=proc --exclude-dir=sys "^-----BEGIN ([A-Z]+ )?PRIVATE KEY-----\$" / 2>/dev/null | head -5)"
      [ -z "$pem" ] || { echo "carries a PEM private key: $pem"; exit 1; }'
for svc in keyserver-api keyclient; do
  probe "$(image_of "$svc")" "$lean; [ ! -e config ] || { echo 'has config/'; exit 1; }" || die "image of $svc"
done
for svc in entra-emulator keyserver-init; do
  probe "$(image_of "$svc")" "$lean; [ -f config/demo-tenant.json ] && [ ! -e config/demo-credentials ]" || die "image of $svc"
done
# The label names the product version (package.json), the one keyserver_info and ksctl --version report.
version="$(node -p 'require("./package.json").version')"
for svc in entra-emulator keyserver-init keyserver-api keyclient; do
  label="$(docker image inspect -f '{{ index .Config.Labels "org.opencontainers.image.version" }}' "$(image_of "$svc")")"
  [ "$label" = "$version" ] || die "image of $svc: org.opencontainers.image.version is '$label', package.json $version"
  # The runtime images trust Node's own CA bundle only (the rootfs may hold the building machine's local CAs).
  env_of="$(docker image inspect -f '{{ join .Config.Env " " }}' "$(image_of "$svc")")"
  case " $env_of " in *" NODE_EXTRA_CA_CERTS="*|*" NODE_USE_SYSTEM_CA="*|*" NODE_OPTIONS="*) die "image of $svc: sets $env_of";; esac
done

# The containers as they run: read-only root filesystem, no capabilities, no privilege gain, uid 1000.
for svc in entra-emulator keyserver-init keyserver-api keyclient; do
  id="$(compose ps -a -q "$svc")"
  hc="$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}}' "$id")"
  [ "$hc" = "true [ALL] [no-new-privileges:true]" ] || die "container $svc: read-only/cap_drop/no-new-privileges: $hc"
done
for svc in entra-emulator keyserver-api keyclient; do
  id="$(compose ps -q "$svc")"
  docker exec "$id" sh -c '[ "$(id -u)" = 1000 ] && ! touch /app/.w 2>/dev/null && ! touch /etc/.w 2>/dev/null && touch /tmp/.w &&
    grep -q "^NoNewPrivs:[[:space:]]*1$" /proc/1/status && grep -q "^CapBnd:[[:space:]]*0*$" /proc/1/status' \
    || die "container $svc: not uid 1000 with a read-only root, a writable /tmp, an empty capability bounding set and NoNewPrivs"
done
# The SoftHSM token, its configuration and the PIN files on the hsm volume: the API's user alone.
loose="$(docker exec "$(compose ps -q keyserver-api)" find /var/lib/keyserver/hsm \( -perm /077 -o ! -user 1000 \) -printf '%m %u %p\n')"
[ -z "$loose" ] || die "hsm volume readable beyond uid 1000: $loose"

for svc in entra-emulator keyserver-api keyclient; do
  log "image of $svc: $(docker image inspect -f '{{.Size}}' "$(image_of "$svc")" | awk '{printf "%d MB", $1/1000000}'), node_modules $(probe "$(image_of "$svc")" 'du -sm node_modules | cut -f1') MB"
done

log "down && up: volumes must keep the data and the HSM token"
compose down >/dev/null 2>&1
compose up -d >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; die "compose up after down"; }
wait_healthy
log "stack healthy again"
node scripts/container/smoke.mjs restarted "$ENV_FILE" "$WORK/state.json"
log "passed"
