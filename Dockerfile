# katsubushi-cpp: a drop-in for the go-katsubushi image. Same entrypoint, same
# arguments and environment variables, same port:
#   docker run -p 11212:11212 katsubushi-cpp -worker-id 1
#   docker run -p 11212:11212 katsubushi-cpp -redis redis://redis:6379/0?ns=katsubushi
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps scripts/install-deps
RUN scripts/install-deps --build-only
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DKATSUBUSHI_BUILD_TESTS=OFF -DKATSUBUSHI_BUILD_BENCHMARKS=OFF \
 && cmake --build /build --target katsubushi katsubushi-dump \
 && strip /build/cmd/katsubushi/katsubushi /build/cmd/katsubushi/katsubushi-grpc.so \
          /build/cmd/katsubushi-dump/katsubushi-dump

FROM debian:bookworm-slim
# gRPC's libraries serve katsubushi-grpc.so, which the server loads only
# with -grpc-port; without it they are never mapped. curl is for health
# checks (docker-compose.yml, ECS) against /healthz.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libspdlog1.10 libfmt9 libhiredis0.14 \
      libgrpc++1.51 libgrpc29 libprotobuf32 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --uid 10001 katsubushi
COPY --from=build /build/cmd/katsubushi/katsubushi /build/cmd/katsubushi-dump/katsubushi-dump /usr/local/bin/
COPY --from=build /build/cmd/katsubushi/katsubushi-grpc.so /usr/local/lib/katsubushi/
USER katsubushi
EXPOSE 11212
# HTTP and gRPC are off unless -http-port / -grpc-port are given.
ENTRYPOINT ["/usr/local/bin/katsubushi"]
