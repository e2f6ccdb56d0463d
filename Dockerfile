# syntax=docker/dockerfile:1
# chat_server, chat_admin (accounts: kubectl exec ... -- chat_admin --help),
# chat_dashboard (the chart's dashboard Deployment runs it) and chat_client
# (for debugging from inside the pod).
#
#   docker build -t chatp/chat-server .
#   docker run -p 30080:8080 -e DB_HOST=... -e REDIS_HOST=... chatp/chat-server
#
# Ports: 8080 the chat protocol, 8081 the web client when WEB_PORT=8081
# (the chart and docker-compose.yml set it; unset, there is no web port),
# 9090 /healthz, /readyz and /metrics (METRICS_PORT, 9090 by default).
#
# Dependencies are compiled in their own layer (cargo-chef), so a change to
# src/ rebuilds only chatp itself.

ARG RUST_VERSION=1.95.0

# Bookworm, as the runtime image: the binary needs no newer glibc than it has.
FROM rust:${RUST_VERSION}-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src
# Release builds without the debug info kept for local profiling.
ENV CARGO_PROFILE_RELEASE_DEBUG=0

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin chat_server --bin chat_client --bin chat_admin --bin chat_dashboard

# glibc, libgcc, CA certificates and a non-root user (65532), nothing else.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /src/target/release/chat_server /src/target/release/chat_client /src/target/release/chat_admin \
    /src/target/release/chat_dashboard /usr/local/bin/
# The original chatp variables, with the server's defaults (DB_PASS and
# REDIS_PASSWORD too, but secrets come from the environment, not the image).
ENV DB_HOST=localhost \
    DB_PORT=5432 \
    DB_NAME=chatdb \
    DB_USER=chatuser \
    REDIS_HOST=localhost \
    REDIS_PORT=6379 \
    LOG_LEVEL=info
USER 65532:65532
EXPOSE 8080 8081 9090
ENTRYPOINT ["/usr/local/bin/chat_server"]
CMD ["8080"]
