# syntax=docker/dockerfile:1
# svcacct's reference server, `svcacct serve`, as a small image: built in a Rust image, run
# from distroless (glibc and nothing else: no shell, no package manager, no curl) as a
# non-root user, the database on a volume.
#
#   docker build -t svcacct .
#   docker run -d -p 8080:8080 -v svcacct-data:/var/lib/svcacct \
#     -e SVCACCT_ADMIN_TOKEN="$(openssl rand -hex 32)" svcacct
#
# The operator token comes from SVCACCT_ADMIN_TOKEN, or better from a file only the server's
# user (uid 65532) can read: SVCACCT_ADMIN_TOKEN_FILE=/run/secrets/svcacct-admin-token.
# `serve` refuses a token file readable by group or others.

ARG RUST_VERSION=1.89

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry and the build between builds of the same builder.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin svcacct \
    && install -D -m 0755 target/release/svcacct /out/svcacct \
    && install -d -m 0700 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/svcacct /usr/local/bin/svcacct
# The volume's mount point, owned by the server's user so a new named volume is too.
COPY --from=builder --chown=65532:65532 /out/data /var/lib/svcacct
VOLUME ["/var/lib/svcacct"]
ENV SVCACCT_DATABASE_URL=/var/lib/svcacct/svcacct.db \
    SVCACCT_HEALTHCHECK_URL=http://127.0.0.1:8080/v1/ready
USER 65532:65532
EXPOSE 8080
# The binary probes itself: the runtime image has no curl or wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/svcacct", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/svcacct"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
