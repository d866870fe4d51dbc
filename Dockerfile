# katsubushi-cpp: a drop-in for the go-katsubushi image. Same entrypoint, same
# arguments and environment variables, same port:
#   docker run -p 11212:11212 katsubushi-cpp -worker-id 1
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps scripts/install-deps
RUN scripts/install-deps --build-only
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DKATSUBUSHI_BUILD_TESTS=OFF -DKATSUBUSHI_BUILD_BENCHMARKS=OFF \
 && cmake --build /build --target katsubushi katsubushi-dump \
 && strip /build/cmd/katsubushi/katsubushi /build/cmd/katsubushi-dump/katsubushi-dump

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libspdlog1.10 libfmt9 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --uid 10001 katsubushi
COPY --from=build /build/cmd/katsubushi/katsubushi /build/cmd/katsubushi-dump/katsubushi-dump /usr/local/bin/
USER katsubushi
EXPOSE 11212
ENTRYPOINT ["/usr/local/bin/katsubushi"]
