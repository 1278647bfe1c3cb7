# Multi-stage build: the toolchain stays in the builder, the runtime image
# holds the binary, CA roots and redis-cli (for the health check).

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
    && install -m 0755 target/release/spillway /usr/local/bin/spillway

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates redis-tools \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --home-dir /var/lib/spillway --shell /usr/sbin/nologin spillway \
    && install -d -o spillway -g spillway -m 0750 /var/lib/spillway /var/lib/spillway/wal
COPY --from=builder /usr/local/bin/spillway /usr/local/bin/spillway
USER spillway
# The working directory holds the SQLite file and WAL of the built-in
# defaults; it is the volume that must outlive the container.
WORKDIR /var/lib/spillway
VOLUME ["/var/lib/spillway"]
EXPOSE 6380
ENV SPILLWAY__SERVER__LISTEN=0.0.0.0:6380
ENTRYPOINT ["spillway"]
