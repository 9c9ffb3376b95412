# One build, four runtime images (targets): entra-emulator, keyserver-api, keyserver-seed, keyclient.
# Every CMD here is also run directly on the host by the end-to-end tests (apps/keyserver-e2e).
#
# Base images (build args): NODE_IMAGE builds, DEBIAN_IMAGE runs (it gets only the node binary).
# Without a registry, scripts/container-base-images.sh builds both from a Debian rootfs and the Node LTS
# from the npm registry (docs/containers.md).
ARG NODE_IMAGE=node:24.22.3-bookworm-slim
ARG DEBIAN_IMAGE=debian:bookworm-slim
# The product version ("version" in package.json; docs/operations.md §9), the images' org.opencontainers.image.version.
# The build stage refuses to build when the two differ, so a label never names another version than the code's.
ARG KEYSERVER_VERSION=1.0.0

FROM ${NODE_IMAGE} AS build
# The npm that wrote package-lock.json (packageManager in package.json): older npm refuses the lockfile.
ARG NPM_VERSION=11.19.1
ARG KEYSERVER_VERSION
WORKDIR /src
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 make g++ ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# Another npm than the image's comes only as the tarball pinned in scripts/toolchain-integrity.txt (checked before
# it is installed; the registry's own integrity field is not trusted).
COPY scripts/pinned-pack.sh scripts/toolchain-integrity.txt scripts/
RUN [ "$(npm --version)" = "$NPM_VERSION" ] \
 || { tgz="$(bash scripts/pinned-pack.sh "npm@$NPM_VERSION" /tmp/pinned-npm)" \
      && npm install -g --no-audit --no-fund "$tgz" && rm -rf /tmp/pinned-npm; }
# node-gyp (pkcs11js) uses the headers of this Node instead of downloading them.
ENV npm_config_nodedir=/usr/local NX_NO_CLOUD=true NX_DAEMON=false NX_TUI=false
COPY package.json package-lock.json ./
COPY tools/keyserver-cli/package.json tools/keyserver-cli/
RUN npm ci --no-audit --no-fund
COPY . .
RUN v="$(node -p 'require("./package.json").version')" \
 && { [ "$v" = "$KEYSERVER_VERSION" ] || { echo "package.json is version $v, the Dockerfile's KEYSERVER_VERSION $KEYSERVER_VERSION" >&2; exit 1; }; } \
 && npm run -s db:generate \
 && npx nx run-many -t build -p entra-emulator keyserver-api keyclient admin-spa --parallel=2
# Runtime modules only: no devDependencies (Angular, Nx, the Prisma CLI, TypeScript, jest) and none of the
# optional peers the Prisma CLI brings (marked devOptional in the lockfile).
RUN npm prune --omit=dev --omit=optional --no-audit --no-fund \
 && rm -rf node_modules/.cache node_modules/@keyserver

FROM ${DEBIAN_IMAGE} AS runtime
ARG KEYSERVER_VERSION
LABEL org.opencontainers.image.title="Keyserver" org.opencontainers.image.version="${KEYSERVER_VERSION}"
# uid/gid 1000 fixed (the Kubernetes manifests' runAsUser); no setuid/setgid programs (su, mount, passwd, ...): no
# way back to root even where no-new-privileges is not set.
RUN groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --home-dir /app --no-create-home --shell /usr/sbin/nologin node \
 && find / -xdev -perm /6000 -type f -exec chmod a-s {} +
COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/scripts/healthcheck.mjs ./scripts/healthcheck.mjs

FROM runtime AS keyserver-api
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends softhsm2 >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && mkdir -p /var/lib/keyserver/hsm && chown -R node:node /var/lib/keyserver && chmod 700 /var/lib/keyserver/hsm \
 && find / -xdev -perm /6000 -type f -exec chmod a-s {} +
COPY --from=build /src/scripts/softhsm-init.sh ./scripts/softhsm-init.sh
COPY --from=build /src/dist/apps/keyserver-api ./dist/apps/keyserver-api
USER node
# The SoftHSM token lives on a volume so keys survive container restarts.
VOLUME ["/var/lib/keyserver/hsm"]
ENV SOFTHSM2_CONF=/var/lib/keyserver/hsm/softhsm2.conf PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so \
    KEYSERVER_HSM_DIR=/var/lib/keyserver/hsm KEYSERVER_API_PORT=3000
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=4s --start-period=60s --retries=5 CMD ["sh", "-c", "exec node scripts/healthcheck.mjs http://127.0.0.1:${KEYSERVER_API_PORT}/readyz"]
CMD ["node", "dist/apps/keyserver-api/main.js"]

# The one-shot demo initialiser: SoftHSM token, migrations, demo keys, subjects and roles. The only image
# besides the emulator that carries config/demo-tenant.json; production runs keyserver-api alone.
FROM keyserver-api AS keyserver-seed
COPY --from=build /src/config/demo-tenant.json ./config/demo-tenant.json
ENV KEYSERVER_MODE=demo
HEALTHCHECK NONE
CMD ["sh", "-c", "bash scripts/softhsm-init.sh && node dist/apps/keyserver-api/main.js seed-demo"]

# The demo identity provider: carries the demo tenant (its secrets are the demo's, see docs/auth.md).
FROM runtime AS entra-emulator
COPY --from=build /src/config/demo-tenant.json ./config/demo-tenant.json
COPY --from=build /src/scripts/container/emulator-entrypoint.mjs ./scripts/emulator-entrypoint.mjs
COPY --from=build /src/dist/tools/entra-emulator ./dist/tools/entra-emulator
USER node
ENV EMULATOR_PORT=4011
EXPOSE 4011
HEALTHCHECK --interval=10s --timeout=4s --start-period=30s --retries=5 CMD ["sh", "-c", "exec node scripts/healthcheck.mjs http://127.0.0.1:${EMULATOR_PORT}/healthz"]
ENTRYPOINT ["node", "scripts/emulator-entrypoint.mjs"]
CMD ["node", "dist/tools/entra-emulator/main.js"]

FROM runtime AS keyclient
COPY --from=build /src/dist/apps/keyclient ./dist/apps/keyclient
COPY --from=build /src/dist/apps/admin-spa ./dist/apps/admin-spa
USER node
ENV KEYCLIENT_PORT=8080 SPA_DIST_DIR=/app/dist/apps/admin-spa/browser
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=4s --start-period=30s --retries=5 CMD ["sh", "-c", "exec node scripts/healthcheck.mjs http://127.0.0.1:${KEYCLIENT_PORT}/readyz"]
CMD ["node", "dist/apps/keyclient/main.js"]
