# syntax=docker/dockerfile:1
# Multi-stage build following cargo-chef's README pattern: dependencies are
# compiled in their own layer, so editing src/ does not rebuild the whole tree.

# chef: a toolchain image with cargo-chef installed, shared by planner and builder.
FROM rust:1.95-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

# planner: turns the manifests into recipe.json (the dependency "fingerprint").
# Its output only changes when the workspace's manifests (Cargo.toml, crates/*/Cargo.toml)
# or Cargo.lock change, which keeps the builder's cook layer cached across ordinary source
# edits.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# builder: compiles dependencies from the recipe first (cached layer), then the app.
FROM chef AS builder
# aws-lc-sys (via aws-lc-rs / jsonwebtoken / rustls) compiles C code. Versions are not
# pinned: the base image is, and Debian's point releases withdraw the old package versions.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config \
 && rm -rf /var/lib/apt/lists/*
COPY --from=planner /app/recipe.json recipe.json
# The production build: without the default `demo` feature, so neither the Huawei Cloud
# simulator nor the demo identity provider (crates/) is compiled in. Cook and build must use
# the same feature flags, or the cooked dependencies are not the ones the build wants.
RUN cargo chef cook --release --locked --no-default-features --recipe-path recipe.json
# The whole workspace (src/, crates/, migrations/, static/, openapi/ ...); see .dockerignore.
COPY . .
RUN cargo build --release --locked --no-default-features --bin starrocks-gateway \
 && mkdir -p /out/data

# runtime: distroless with glibc/libgcc only (no shell, no package manager),
# running as the unprivileged nonroot user.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="starrocks-gateway" \
      org.opencontainers.image.description="Self-service StarRocks on Huawei Cloud TaurusDB, within org policy" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
WORKDIR /app
COPY --from=builder /app/target/release/starrocks-gateway /app/starrocks-gateway
COPY static/ /app/static/
COPY openapi/ /app/openapi/
COPY config/ /app/config/
# The embedded SQLite database needs a directory the non-root user can write; mount a
# volume there to keep the quota ledger and decision log across restarts (or point
# SRGW_STORAGE__URL at PostgreSQL). The gateway refuses to start on an empty volume, so a lost
# ledger never comes back at zero: create it once with
#   docker run -v gw-data:/app/data IMAGE serve --config /app/config/gateway.example.toml --init-storage
COPY --from=builder --chown=65532:65532 /out/data /app/data
ENV SRGW_STORAGE__URL=sqlite:///app/data/starrocks-gateway.db
# mimalloc gives freed memory back to the OS at once instead of after a delay that idle
# worker threads never reach: after a flood of 9,000 held connections the process returns to
# about idle (58 MiB, idle 43) instead of keeping 90 MiB, at no throughput cost we could
# measure (BENCHMARKS.md, "Connection flood").
ENV MIMALLOC_PURGE_DELAY=0
VOLUME /app/data
# distroless `nonroot`, by number so the runtime can tell it is not root without /etc/passwd.
USER 65532:65532
EXPOSE 8080
# No shell or curl in the image: the binary asks /healthz itself. With another listen port
# (or server.ops_listen), set SRGW_HEALTHCHECK_URL to match.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/app/starrocks-gateway", "healthcheck"]
ENTRYPOINT ["/app/starrocks-gateway"]
CMD ["serve", "--config", "/app/config/gateway.example.toml"]
