# A stand-in for the official node:22-bookworm-slim where Docker Hub cannot be reached (bin/test-image):
# Debian bookworm (debootstrap, imported) plus Node's official binary and npm, both from the npm registry.
ARG DEBIAN_IMAGE=webordinary/debian:bookworm
FROM ${DEBIAN_IMAGE}
COPY node.tgz npm.tgz /tmp/
RUN tar xzf /tmp/node.tgz -C /tmp \
 && cp /tmp/package/bin/node /usr/local/bin/node \
 && mkdir -p /usr/local/lib/node_modules/npm \
 && tar xzf /tmp/npm.tgz -C /usr/local/lib/node_modules/npm --strip-components=1 \
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && rm -rf /tmp/package /tmp/node.tgz /tmp/npm.tgz \
 && node --version && npm --version
CMD ["node"]
