# syntax=docker/dockerfile:1.7
# One image for the operator and the runner (different commands). Node.js 24 LTS.
ARG NODE_VERSION=24.21.0

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; the `node` runtime package is a devDependency and is not needed here.
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts \
 && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="syncline" \
      org.opencontainers.image.description="Reverse ETL as a Kubernetes operator: operator and runner" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/syncline/syncline"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY crds ./crds
COPY connectors ./connectors
COPY runner ./runner
COPY operator ./operator
# The image's `node` user (uid 1000); runs with a read-only root filesystem, scratch space in /tmp.
USER 1000:1000
ENTRYPOINT ["node"]
CMD ["/app/operator/main.ts"]
