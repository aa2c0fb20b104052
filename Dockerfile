# syntax=docker/dockerfile:1
# itniotech-exporter container image: a release build on the Rust image, run on distroless
# (glibc, CA certificates, no shell or package manager) as the unprivileged user 65532.
#
#   docker build --build-arg REVISION="$(git rev-parse --short=12 HEAD)" -t itniotech-exporter .
#   (podman/buildah: add --format docker, or the HEALTHCHECK is dropped)
#   docker run -p 9867:9867 -v itniotech-data:/var/lib/itniotech-exporter \
#     -v "$PWD/intake-token:/run/secrets/intake-token:ro" \
#     -e ITNIOTECH_API_KEY -e ITNIOTECH_API_SECRET itniotech-exporter
#
# The store lives on the volume /var/lib/itniotech-exporter: keep it across container
# replacements, it holds the pending orders and the counters (docs/deploy.md).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM docker.io/library/rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# The git revision for itniotech_exporter_build_info: .git is not sent to the build.
ARG REVISION=unknown
# busybox only for its wget: the HEALTHCHECK has no shell or curl in the runtime image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends busybox-static \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cargo.lock pins every crate; the caches only speed up rebuilds. The line tables of the
# release profile are stripped (81 MB -> 18 MB); symbols stay, so a panic still names functions.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    ITNIOTECH_REVISION="${REVISION}" cargo build --release --locked --bin itniotech-exporter \
 && install -D -m 0755 target/release/itniotech-exporter /out/usr/local/bin/itniotech-exporter \
 && strip --strip-debug /out/usr/local/bin/itniotech-exporter \
 && install -D -m 0755 /bin/busybox /out/usr/local/bin/busybox \
 && install -d -m 0700 -o 65532 -g 65532 /out/var/lib/itniotech-exporter

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="itniotech-exporter" \
      org.opencontainers.image.description="Prometheus exporter and monitoring agent for the itniotech OTP platform" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/itniotech-exporter/itniotech-exporter" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /
USER 65532:65532
VOLUME ["/var/lib/itniotech-exporter"]
EXPOSE 9867
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:9867/-/healthy"]
ENTRYPOINT ["/usr/local/bin/itniotech-exporter"]
# The intake listens on every interface here, so it takes orders only with a token: mount one
# at /run/secrets/intake-token (a Docker/Compose secret's path). API key and secret come from
# ITNIOTECH_API_KEY / ITNIOTECH_API_SECRET or --api.key-file / --api.secret-file.
CMD ["run", "--storage.path=/var/lib/itniotech-exporter", "--intake.token-file=/run/secrets/intake-token"]
