# One build, three runtime images (targets): entra-emulator, keyserver-api, keyclient.
# Every CMD here is also run directly on the host by the end-to-end tests (apps/keyserver-e2e).
FROM node:20.20-bookworm AS build
WORKDIR /src
RUN apt-get update -qq && apt-get install -y -qq python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
ENV NX_NO_CLOUD=true NX_DAEMON=false NX_TUI=false
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20.20-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/config ./config
COPY --from=build /src/scripts ./scripts
COPY --from=build /src/libs/data-access/prisma ./libs/data-access/prisma
USER node

FROM runtime AS entra-emulator
COPY --from=build /src/dist/tools/entra-emulator ./dist/tools/entra-emulator
EXPOSE 4011
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD ["node", "scripts/healthcheck.mjs", "http://127.0.0.1:4011/healthz"]
CMD ["node", "dist/tools/entra-emulator/main.js"]

FROM runtime AS keyserver-api
USER root
RUN apt-get update -qq && apt-get install -y -qq softhsm2 opensc && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/keyserver/hsm && chown -R node:node /var/lib/keyserver
USER node
COPY --from=build /src/dist/apps/keyserver-api ./dist/apps/keyserver-api
# The SoftHSM token lives on a volume so keys survive container restarts.
VOLUME ["/var/lib/keyserver/hsm"]
ENV SOFTHSM2_CONF=/var/lib/keyserver/hsm/softhsm2.conf PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD ["node", "scripts/healthcheck.mjs", "http://127.0.0.1:3000/readyz"]
CMD ["node", "dist/apps/keyserver-api/main.js"]

FROM runtime AS keyclient
COPY --from=build /src/dist/apps/keyclient ./dist/apps/keyclient
COPY --from=build /src/dist/apps/admin-spa ./dist/apps/admin-spa
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=5 CMD ["node", "scripts/healthcheck.mjs", "http://127.0.0.1:8080/readyz"]
CMD ["node", "dist/apps/keyclient/main.js"]
