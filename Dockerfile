# syntax=docker/dockerfile:1.7
#
# BoSar Chat container image.
#
# Build (the service runs on Fargate linux/amd64):
#   docker buildx build --platform linux/amd64 -t bosar-chat .
#
# Stages:
#   chef     - Rust toolchain plus a pinned cargo-chef
#   planner  - computes the dependency "recipe" from the manifests and Cargo.lock
#   builder  - compiles the dependencies from the recipe (a layer that stays cached
#              until Cargo.toml/Cargo.lock change), then the application itself
#   runtime  - distroless glibc image (ca-certificates, libssl, libgcc) running as
#              an unprivileged user; no shell, no package manager
#
# Migrations (migrations/) and the static web client (web/) are embedded in the
# binary at compile time, so the runtime image carries nothing but the binary.

ARG RUST_VERSION=1.95
ARG CARGO_CHEF_VERSION=0.1.77

FROM rust:${RUST_VERSION}-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install --locked cargo-chef --version "${CARGO_CHEF_VERSION}"
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json --bin bosar-chat

FROM chef AS builder
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
COPY --from=planner /app/recipe.json recipe.json
# Dependencies only: re-used from the cache while recipe.json is unchanged.
RUN cargo chef cook --release --recipe-path recipe.json --bin bosar-chat
# The application: src/, migrations/ and web/ are read by the compiler here.
COPY . .
RUN cargo build --release --locked --bin bosar-chat \
    && install -D -m 0755 target/release/bosar-chat /out/bosar-chat

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="bosar-chat" \
      org.opencontainers.image.description="BoSar Chat WebSocket chat service" \
      org.opencontainers.image.licenses="UNLICENSED"
COPY --from=builder /out/bosar-chat /usr/local/bin/bosar-chat
ENV PORT=3001 \
    HOST=0.0.0.0 \
    LOG_FORMAT=json \
    RUST_LOG=info
# 65532 is the distroless "nonroot" user and group.
USER 65532:65532
EXPOSE 3001
# The server drains on SIGTERM (GET /api answers 503, sockets close with 1012
# spread over SHUTDOWN_GRACE_SECS); give it that long before a SIGKILL.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/bosar-chat", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/bosar-chat"]
CMD ["serve"]
