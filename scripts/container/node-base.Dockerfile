# A Node base image for building Keyserver without an image registry: a Debian rootfs (debootstrap, imported)
# plus the Node LTS and npm from the npm registry, laid out like the official node images (/usr/local).
# Built by scripts/container-base-images.sh; the context is the prefix from scripts/node-lts.sh.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
COPY bin/node /usr/local/bin/node
COPY include/ /usr/local/include/
COPY lib/ /usr/local/lib/
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \
 && node --version && npm --version
# npm and node-gyp trust the CAs of the rootfs (which include the building machine's local CAs).
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
