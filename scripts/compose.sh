#!/usr/bin/env bash
# `docker compose` (v2) where it exists, else `docker-compose` (v1, Debian 12), on this repository's
# docker-compose.yml; writes .env with random secrets first if there is none (scripts/compose-env.sh).
#   scripts/compose.sh up --build -d     scripts/compose.sh ps     scripts/compose.sh down
set -euo pipefail
cd "$(dirname "$0")/.."
[ -e .env ] || bash scripts/compose-env.sh .env
if docker compose version >/dev/null 2>&1; then
  exec docker compose "$@"
elif command -v docker-compose >/dev/null 2>&1; then
  exec docker-compose "$@"
fi
echo "compose.sh: install Docker Compose: the docker-compose-plugin (v2) or Debian's docker-compose (v1)" >&2
exit 1
