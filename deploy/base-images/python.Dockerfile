# emissions/python:3.11 — Debian bookworm's python3.11, a stand-in for python:3.11-slim
# on machines that cannot pull from Docker Hub. Built by deploy/build-base-images.sh.
ARG DEBIAN_IMAGE=emissions/debian:bookworm
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && ln -s /usr/bin/python3 /usr/local/bin/python \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["python3"]
