# emissions/redis:7 — Debian bookworm's redis-server (7.0), a stand-in for redis:7:
# listens on every interface without protected mode, data in /data, redis-cli for healthchecks.
ARG DEBIAN_IMAGE=emissions/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
