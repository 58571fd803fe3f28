# sluice single-node dev broker.
#
#   docker build -t sluice .
#   docker run -p 9092:9092 -v sluice-data:/var/lib/sluice sluice
#
# Clients on the host then reach it at localhost:9092. The defaults (CMD) listen on every
# interface of the container and advertise 127.0.0.1:9092, the address a host client reaches
# through `-p 9092:9092`. For clients in other containers, advertise the name they resolve:
#   docker run --network dev --name sluice sluice \
#     --listen-address 0.0.0.0:9092 --advertised-address sluice:9092 --data-dir /var/lib/sluice
# (one broker advertises one address: serving host and container clients at once takes two
# containers on two ports, or a host-gateway name both sides resolve).
#
# integration-tests/docker/check.sh runs this file's build (the `RUN cargo build` line),
# ENTRYPOINT + CMD and HEALTHCHECK without a Docker engine, and lints this file.

FROM rust:1.95.0-slim-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sluice
RUN install -D -m 0755 target/release/sluice /out/sluice

FROM debian:12.12-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/sluice --create-home sluice
COPY --from=builder /out/sluice /usr/local/bin/sluice
USER sluice
WORKDIR /var/lib/sluice
VOLUME ["/var/lib/sluice"]
EXPOSE 9092
# bash's /dev/tcp: the image needs no client tool to know the listener accepts connections.
# Healthy = ready: registered, admitted and unfenced (the metrics listener's /ready), not just
# listening, so nothing is sent to a broker that cannot hand itself out yet.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9644 && printf 'GET /ready HTTP/1.0\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -q ' 200'"]
ENTRYPOINT ["sluice"]
CMD ["--listen-address", "0.0.0.0:9092", "--advertised-address", "127.0.0.1:9092", "--data-dir", "/var/lib/sluice"]
