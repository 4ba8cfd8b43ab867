# syntax=docker/dockerfile:1.7
# One image for the operator and the runner (different commands), on Node.js 24 LTS, which runs the
# TypeScript sources directly (type stripping): the only build step is the web console's bundle (stage
# "console"), and only production dependencies reach the image.
#   operator: the default command (it serves the console at /console/ on its API port)
#   runner:   node /app/bin/syncline.mjs <subcommand>  (the operator sets it on its Jobs)
# test/image/ checks this file with hadolint and performs the same steps in a temp folder.
ARG NODE_VERSION=24.21.0

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only (the `node` runtime package is a devDependency: the base image has Node).
# No install scripts: DuckDB's native binding comes as a prebuilt optional dependency.
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts \
 && npm cache clean --force

# The web console (Preact, uPlot; operator/console/): bundled by esbuild into operator/console/dist/. Its
# build tools are devDependencies, pinned by the lockfile; none of them reaches the image.
FROM node:${NODE_VERSION}-bookworm-slim AS console
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --include=dev --no-audit --no-fund --ignore-scripts \
 && npm cache clean --force
COPY operator/console ./operator/console
RUN node operator/console/build.ts

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="syncline" \
      org.opencontainers.image.description="Reverse ETL as a Kubernetes operator: operator and runner" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Syncline" \
      org.opencontainers.image.url="https://github.com/syncline/syncline" \
      org.opencontainers.image.documentation="https://github.com/syncline/syncline#readme" \
      org.opencontainers.image.source="https://github.com/syncline/syncline"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --chown=root:root package.json ./
COPY --chown=root:root bin ./bin
COPY --chown=root:root crds ./crds
COPY --chown=root:root core ./core
COPY --chown=root:root connectors ./connectors
COPY --chown=root:root runner ./runner
COPY --chown=root:root operator ./operator
COPY --from=console --chown=root:root /app/operator/console/dist ./operator/console/dist
# The files are root's and read-only to the process; it runs as the image's `node` user (uid 1000)
# with a read-only root filesystem, and writes only to /tmp (an emptyDir in the chart and in Jobs).
USER 1000:1000
EXPOSE 8080
ENTRYPOINT ["node"]
CMD ["/app/operator/main.ts"]
