# A stand-in for the official node:22-bookworm-slim where Docker Hub cannot be reached (bin/test-image):
# Debian bookworm (make-debian.sh, imported) plus Node's official binary and npm, both from the npm
# registry. The tarballs are unpacked in a stage of their own: no layer keeps them.
ARG DEBIAN_IMAGE=webordinary/debian:bookworm
FROM ${DEBIAN_IMAGE} AS unpack
COPY node.tgz npm.tgz /tmp/
RUN mkdir -p /out/usr/local/bin /out/usr/local/lib/node_modules/npm \
 && tar xzf /tmp/node.tgz -C /tmp package/bin/node \
 && mv /tmp/package/bin/node /out/usr/local/bin/node \
 && tar xzf /tmp/npm.tgz -C /out/usr/local/lib/node_modules/npm --strip-components=1 \
 && rm -rf /out/usr/local/lib/node_modules/npm/docs /out/usr/local/lib/node_modules/npm/man \
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /out/usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /out/usr/local/bin/npx \
 && PATH=/out/usr/local/bin:$PATH npm --version

FROM ${DEBIAN_IMAGE}
COPY --from=unpack /out/ /
CMD ["node"]
