# katsubushi-cpp: a drop-in for the go-katsubushi image. Same entrypoint, same
# arguments and environment variables, same port:
#   docker run -p 11212:11212 katsubushi-cpp -worker-id 1
#   docker run -p 11212:11212 katsubushi-cpp -redis redis://redis:6379/0?ns=katsubushi
#
# Two images, both FROM scratch (no shell, no package manager), running as
# the unprivileged user katsubushi (uid 10001):
#   minimal (default)  the self-contained server (KATSUBUSHI_STATIC_RUNTIME),
#                      katsubushi-dump, glibc's libc and loader, CA bundle 11 MB
#     docker build -t katsubushi-cpp .
#   grpc               + katsubushi-grpc.so and the gRPC, protobuf,
#                      OpenSSL and C++ libraries it loads (-grpc-port) 33 MB
#     docker build --target grpc -t katsubushi-cpp:grpc .
# Health checks run the binary itself: `katsubushi -health-check` (with the
# server's ports in its flags or environment; see README).
# TLS: mount the certificate and key and name them in the environment, which
# the HEALTHCHECK reads too (it then speaks TLS to the port it checks):
#   docker run -v $PWD/certs:/certs:ro -e KATSUBUSHI_TLS_CERT_FILE=/certs/tls.crt \
#     -e KATSUBUSHI_TLS_KEY_FILE=/certs/tls.key -e KATSUBUSHI_TLS_CA_FILE=/certs/ca.crt \
#     -p 11212:11212 katsubushi-cpp -worker-id 1
# (KATSUBUSHI_TLS_CA_FILE: the health check verifies with it; the key must be
# readable by uid 10001). docker-compose.tls.yml does the same for compose.
# podman: build with --format docker, or the OCI format drops HEALTHCHECK.
#
# Both architectures: --platform linux/amd64 or linux/arm64. The build stage
# always runs on the build machine's own architecture and cross-compiles for
# arm64 with Debian's aarch64 toolchain (minimal image only: Debian's arm64
# gRPC cannot be cross-built against here).
ARG BASE_IMAGE=debian:bookworm

FROM --platform=$BUILDPLATFORM ${BASE_IMAGE} AS build
ARG TARGETARCH
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY scripts/install-deps scripts/install-deps
RUN if [ "${TARGETARCH:-amd64}" = arm64 ] && [ "$(dpkg --print-architecture)" != arm64 ]; then \
      scripts/install-deps --build-only --cross-arm64; \
    else \
      scripts/install-deps --build-only; \
    fi \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY . .
RUN scripts/image-build "${TARGETARCH:-amd64}" /build /rootfs /rootfs-grpc

FROM scratch AS grpc
COPY --from=build /rootfs-grpc/ /
USER katsubushi
EXPOSE 11212
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s CMD ["/usr/local/bin/katsubushi", "-health-check"]
# HTTP and gRPC are off unless -http-port / -grpc-port are given.
ENTRYPOINT ["/usr/local/bin/katsubushi"]

FROM scratch AS minimal
COPY --from=build /rootfs/ /
USER katsubushi
EXPOSE 11212
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s CMD ["/usr/local/bin/katsubushi", "-health-check"]
ENTRYPOINT ["/usr/local/bin/katsubushi"]
