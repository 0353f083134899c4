#!/usr/bin/env bash
# Build the local base images from Debian packages, for machines that cannot pull from Docker Hub
# (the Debian archive and PyPI are all they reach):
#
#   emissions/debian:bookworm   debootstrap --variant=minbase, imported with `docker import`
#   emissions/python:3.11       + Debian's python3.11 and python3-venv  (stands in for python:3.11-slim)
#   emissions/postgres:15       + postgresql-15 and an entry point      (stands in for postgres:15)
#   emissions/redis:7           + redis-server 7.0                      (stands in for redis:7)
#   emissions/nats:2.9          + nats-server 2.9 (JetStream)           (the compose `stream`
#                               profile's server, NATS_IMAGE's default; no public image needed)
#   emissions/patroni:15        postgres:15 + patroni 3.0 + etcd 3.4     (the compose `ha` profile's
#                               nodes: deploy/compose-ha/; no public image stands in for it)
#
# Usage (as root, with dockerd running):  bash deploy/build-base-images.sh [--force]
# Needs: apt-get install -y docker.io debootstrap.
# Environment:
#   DEBIAN_MIRROR           archive to bootstrap from (default: the one this machine's apt uses)
#   DEBIAN_SECURITY_MIRROR  security archive for the images' apt sources (default: likewise)
#   FORCE=1 / --force       rebuild images that already exist
#   ENV_FILE                where to write the image variables (default: .env beside
#                           docker-compose.yml); empty: only print them
# docker-compose.yml and the Dockerfiles use the images through PYTHON_IMAGE, POSTGRES_IMAGE and
# REDIS_IMAGE. The script writes those to ENV_FILE (other lines kept), which compose reads on
# every command; variables set in the shell still win (deploy/test-compose.sh sets its own).
set -euo pipefail

SUITE=bookworm
DEBIAN_IMAGE=emissions/debian:$SUITE
PYTHON_IMAGE=emissions/python:3.11
POSTGRES_IMAGE=emissions/postgres:15
REDIS_IMAGE=emissions/redis:7
NATS_IMAGE=emissions/nats:2.9
PATRONI_IMAGE=emissions/patroni:15
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ENV_FILE="${ENV_FILE-$(dirname "$HERE")/.env}"
FORCE="${FORCE:-0}"
[[ "${1:-}" == "--force" ]] && FORCE=1

say() { printf '[base-images] %s\n' "$*"; }
die() { printf '[base-images] error: %s\n' "$*" >&2; exit 1; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
wanted() { [[ "$FORCE" == 1 ]] || ! have_image "$1"; }

command -v docker >/dev/null || die "docker not found (apt-get install -y docker.io)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (start it: dockerd > /tmp/dockerd.log 2>&1 &)"

# The first archive URI apt is configured with for a suite (deb822 .sources or one-line lists).
apt_mirror() {
    local suite="$1"
    python3 - "$suite" <<'PY'
import glob, re, sys
suite = sys.argv[1]
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.lstrip().startswith("#") and not line.startswith(" "):
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.split()
        if "deb" in fields.get("types", []) and suite in fields.get("suites", []) and fields.get("enabled", ["yes"]) != ["no"]:
            print(fields["uris"][0]); sys.exit()
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            print(words[1]); sys.exit()
PY
}

build_debian() {
    command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install -y debootstrap)"
    [[ "$(id -u)" == 0 ]] || die "debootstrap needs root"
    local mirror security rootfs
    mirror="${DEBIAN_MIRROR:-$(apt_mirror "$SUITE")}"
    [[ -n "$mirror" ]] || die "no $SUITE archive in this machine's apt sources: set DEBIAN_MIRROR"
    security="${DEBIAN_SECURITY_MIRROR:-$(apt_mirror "$SUITE-security")}"
    rootfs="$(mktemp -d /tmp/emissions-rootfs.XXXXXX)"
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "rm -rf '$rootfs'" RETURN
    say "debootstrap $SUITE (minbase) from $mirror"
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" > "$rootfs.log" 2>&1 \
        || { tail -20 "$rootfs.log" >&2; die "debootstrap failed (log: $rootfs.log)"; }
    rm -f "$rootfs.log"

    # Like Debian's *-slim images: no manuals or translations in images, copyright kept.
    cat > "$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
    find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/*
    cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CFG'
APT::Install-Recommends "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
CFG

    rm -f "$rootfs/etc/apt/sources.list"
    cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    if [[ -n "$security" ]]; then
        cat >> "$rootfs/etc/apt/sources.list.d/debian.sources" <<SRC

Types: deb
URIs: $security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    else
        say "warning: no $SUITE-security archive configured (DEBIAN_SECURITY_MIRROR): no security updates"
    fi
    say "security and point-release updates"
    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
        sh -c 'apt-get -o APT::Sandbox::User=root update -qq &&
               apt-get -o APT::Sandbox::User=root -y -qq upgrade && apt-get clean' \
        > "$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; die "upgrade in the chroot failed"; }
    rm -f "$rootfs.log"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/*.log \
        "$rootfs"/tmp/* "$rootfs"/var/tmp/*
    : > "$rootfs/etc/resolv.conf"
    : > "$rootfs/etc/hostname"

    say "docker import -> $DEBIAN_IMAGE"
    tar --numeric-owner --xattrs -C "$rootfs" \
        --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . \
        | docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["bash"]' \
            --message "debootstrap --variant=minbase $SUITE $mirror" \
            - "$DEBIAN_IMAGE" > /dev/null
}

build_from_debian() {  # image dockerfile
    say "docker build -> $1"
    local log
    log="$(mktemp)"
    # The classic builder: it needs no buildx plugin (Debian's docker.io ships none).
    DOCKER_BUILDKIT=0 docker build --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" \
        -t "$1" -f "$HERE/base-images/$2" "$HERE/base-images" > "$log" 2>&1 \
        || { tail -30 "$log" >&2; rm -f "$log"; die "docker build of $1 failed"; }
    rm -f "$log"
}

if wanted "$DEBIAN_IMAGE"; then build_debian; else say "$DEBIAN_IMAGE exists"; fi
for pair in "$PYTHON_IMAGE:python.Dockerfile" "$POSTGRES_IMAGE:postgres.Dockerfile" \
            "$REDIS_IMAGE:redis.Dockerfile" "$NATS_IMAGE:nats.Dockerfile"; do
    image="${pair%:*}" dockerfile="${pair##*:}"
    if wanted "$image"; then build_from_debian "$image" "$dockerfile"; else say "$image exists"; fi
done
# The HA profile's node image: its context is deploy/, so that it copies deploy/ha's templates
# (the one place the cluster's settings live) next to deploy/compose-ha's entry point. Rebuilt
# whenever those files change (their hash is a label), not only with --force.
patroni_inputs="$(cd "$HERE" && cat ha/patroni.yml.in ha/etcd.yml.in compose-ha/* | sha256sum | cut -c1-16)"
built_inputs="$(docker image inspect -f '{{index .Config.Labels "emissions.inputs"}}' "$PATRONI_IMAGE" 2>/dev/null || true)"
if wanted "$PATRONI_IMAGE" || [[ "$built_inputs" != "$patroni_inputs" ]]; then
    say "docker build -> $PATRONI_IMAGE (deploy/ha/*.yml.in + deploy/compose-ha/ $patroni_inputs)"
    log="$(mktemp)"
    DOCKER_BUILDKIT=0 docker build --build-arg "POSTGRES_IMAGE=$POSTGRES_IMAGE" \
        --label "emissions.inputs=$patroni_inputs" \
        -t "$PATRONI_IMAGE" -f "$HERE/compose-ha/patroni.Dockerfile" "$HERE" > "$log" 2>&1 \
        || { tail -30 "$log" >&2; rm -f "$log"; die "docker build of $PATRONI_IMAGE failed"; }
    rm -f "$log"
else
    say "$PATRONI_IMAGE exists"
fi
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep '^emissions/' | sort

# Compose needs these on every command, not only the first: keep them where it reads them.
settings=("PYTHON_IMAGE=$PYTHON_IMAGE" "POSTGRES_IMAGE=$POSTGRES_IMAGE" "REDIS_IMAGE=$REDIS_IMAGE")
if [[ -n "$ENV_FILE" ]]; then
    kept="$(grep -v -E '^(PYTHON_IMAGE|POSTGRES_IMAGE|REDIS_IMAGE)=' "$ENV_FILE" 2>/dev/null || true)"
    { [[ -z "$kept" ]] || printf '%s\n' "$kept"; printf '%s\n' "${settings[@]}"; } > "$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    say "wrote ${settings[*]} to $ENV_FILE: compose reads it on every command"
else
    say "add these to .env beside docker-compose.yml, or export them: ${settings[*]}"
fi
