# emissions/nats:2.9 — Debian bookworm's nats-server (2.9.10) with JetStream, for the compose
# `stream` profile: clients on 4222, monitoring on 8222 (/healthz for the health check, which
# bash's /dev/tcp asks: the image has no curl), the JetStream file store in /data.
ARG DEBIAN_IMAGE=emissions/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends nats-server \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown nats:nats /data
WORKDIR /data
USER nats
EXPOSE 4222 8222
CMD ["nats-server", "--jetstream", "--store_dir", "/data", "--http_port", "8222"]
