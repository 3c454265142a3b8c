# kube-join container image. Build: docker build -t kube-join:0.1.0 .
# Runtime: Node.js 26, the active LTS line since 2026-10-28 (see docs/operations.md, "Container
# image", for why not Node 20), on Debian slim; production dependencies only; runs as uid 1000,
# never root.

ARG NODE_IMAGE=node:26-slim

# Stage 1: compile TypeScript with the full (dev) dependency set.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the `prepare` script would build before the sources are copied in.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Stage 2: production dependencies only, resolved from the same lock file. --omit=optional leaves
# out better-sqlite3, which only Node 20 needs: Node 26 has SQLite built in (node:sqlite), so the
# image needs no compiler and ships no native module.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund && npm cache clean --force

# Stage 3: the runtime image: compiled JavaScript, production node_modules, the launcher.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
# Mount points: config and resources (read-only, e.g. a ConfigMap), data directory (generated CA
# keys when no `ca:` files are configured, and the SQLite store when no other store is
# configured: keep it, or every restart makes a new CA and forgets instances and locks).
RUN chmod 0755 /app/bin/kube-join.js \
  && ln -s /app/bin/kube-join.js /usr/local/bin/kube-join \
  && mkdir -p /etc/kube-join /var/lib/kube-join \
  && chown 1000:1000 /var/lib/kube-join \
  && chmod 0700 /var/lib/kube-join
# Numeric, so Kubernetes' runAsNonRoot can verify it (uid 1000 is the image's `node` user).
USER 1000:1000
VOLUME ["/var/lib/kube-join"]
# 3025: join listener (listen_addr); 3000: diagnostics, /metrics /healthz /readyz (diag_addr).
EXPOSE 3025 3000
ENTRYPOINT ["kube-join"]
CMD ["serve", "--config", "/etc/kube-join/config.yaml"]
