# certgate container image.
#
#   docker build -t certgate:0.1.0 .
#   docker run --rm -v "$PWD/my-config:/etc/certgate:ro" -p 9191:9191 -p 9192:9192 certgate:0.1.0
#
# The image holds no config: mount a directory with certgate.yaml (and its roles_dir)
# at /etc/certgate, as deploy/kubernetes/ does with ConfigMaps. Other subcommands replace
# the default arguments (`serve --config /etc/certgate/certgate.yaml`):
#   docker run --rm -v "$PWD/my-config:/etc/certgate:ro" certgate:0.1.0 \
#     validate --config /etc/certgate/certgate.yaml
#
# Two stages: a Rust builder on Debian bookworm, and distroless cc-debian12 (glibc,
# libgcc; no shell, no package manager) running as the unprivileged user 65532. Both
# are Debian 12, so the binary runs against the glibc it was linked with.

# --- build --------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src

# Dependencies first, against placeholder sources: this layer (the slow part of the
# build) is reused until Cargo.toml, Cargo.lock, build.rs or the protos change. build.rs
# compiles proto/ with protox, so no protoc is needed; ring's C and assembly are built
# with the image's gcc.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/check.rs \
    && cargo build --release --locked --bin certgate \
    && rm -rf src benches

# The real sources. `touch` makes them newer than the placeholders' build outputs:
# COPY keeps the files' own mtimes, which may be older, and cargo would then reuse the
# placeholder binary.
COPY src ./src
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin certgate \
    && install -D -m 0755 target/release/certgate /out/certgate \
    && /out/certgate --version

# --- runtime ------------------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="certgate" \
      org.opencontainers.image.description="Envoy ext_authz gRPC service that authorizes mTLS requests by client X.509 certificate against Vault-compatible role files" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/certgate /usr/local/bin/certgate
USER 65532:65532
# 9191: gRPC (ext_authz v3, grpc.health.v1, reflection, certgate.v1.Admin)
# 9192: HTTP admin (/metrics, /healthz, /readyz); set admin_listen: 0.0.0.0:9192 in
#       certgate.yaml to reach it from outside the container (its default is loopback)
EXPOSE 9191 9192
ENTRYPOINT ["/usr/local/bin/certgate"]
CMD ["serve", "--config", "/etc/certgate/certgate.yaml"]
