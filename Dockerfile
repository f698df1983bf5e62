# syntax=docker/dockerfile:1
#
# outseta-gateway container image.
#
#   docker build -t outseta-gateway .
#   docker run --rm -p 8080:8080 -p 9090:9090 \
#     -v "$PWD/gateway.toml:/etc/outseta-gateway/gateway.toml:ro" \
#     -e OUTSETA_API_KEY -e OUTSETA_API_SECRET outseta-gateway
#
# See docs/deploy.md. BuildKit is required (cache mounts below); it is the default builder.

# ---- build -------------------------------------------------------------------------------
# Debian bookworm, so the binary's glibc matches the runtime image's (distroless cc-debian12).
# Override to pin a toolchain: --build-arg RUST_IMAGE=rust:1.89-bookworm (the crate's MSRV).
ARG RUST_IMAGE=rust:1-bookworm
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# The whole context (.dockerignore keeps target/, .git and the like out): Cargo.toml may name
# bench and test targets whose files cargo expects to find.
COPY . .
# Exactly the commands CI runs (`.ci/run`). The registry, git checkouts and target/ live in
# BuildKit cache mounts, so a rebuild only recompiles what changed; the cache is not part of
# any layer, hence the copy out of target/. `install -s` strips the copy: the release profile
# keeps line tables for profiling (85 MB), the image needs none of it (18 MB).
RUN --mount=type=cache,id=outseta-gateway-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=outseta-gateway-cargo-git,target=/usr/local/cargo/git \
    --mount=type=cache,id=outseta-gateway-target,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 -s target/release/outseta-gateway /out/outseta-gateway

# ---- runtime -----------------------------------------------------------------------------
# distroless/cc (Debian 12): glibc, libgcc, CA certificates (/etc/ssl/certs, read by
# rustls-native-certs for the upstream TLS) and tzdata — and no shell or package manager, so
# far fewer CVEs to patch than debian:bookworm-slim + ca-certificates. Debug with
# `kubectl debug` (an ephemeral container) rather than a shell in the image.
FROM gcr.io/distroless/cc-debian12:nonroot

LABEL org.opencontainers.image.title="outseta-gateway" \
      org.opencontainers.image.description="Authenticating reverse proxy that lets browser apps call the Outseta REST API safely" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=builder /out/outseta-gateway /usr/local/bin/outseta-gateway
# The repository's default config (config/gateway.toml). Mount your own over it — as a file,
# or as the whole directory (Kubernetes ConfigMap). In a container set
# admin_listen = "0.0.0.0:9090", or probes from outside the container cannot reach it.
COPY config/gateway.toml /etc/outseta-gateway/gateway.toml
ENV OUTSETA_GATEWAY_CONFIG=/etc/outseta-gateway/gateway.toml

# A fixed numeric non-root UID/GID (not distroless' 65532), matching the Helm chart's
# runAsUser/fsGroup so mounted secret files (0440, group 10001) are readable.
USER 10001:10001

# 8080: the proxy (listen). 9090: admin — /healthz, /readyz, /metrics, POST /cache/purge;
# never publish it to the internet.
EXPOSE 8080 9090

# The gateway drains on SIGTERM (readyz 503, stop accepting, finish in-flight requests within
# shutdown_grace, default 25s): give `docker stop` a longer timeout, e.g. `-t 35`. It handles
# its signals itself and starts no child processes, so it needs no init as PID 1.
STOPSIGNAL SIGTERM

# No HEALTHCHECK: the image has no HTTP client to run one; Kubernetes probes GET /healthz and
# /readyz on port 9090 (see helm/outseta-gateway).
ENTRYPOINT ["/usr/local/bin/outseta-gateway"]
CMD ["serve"]
