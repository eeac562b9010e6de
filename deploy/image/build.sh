#!/usr/bin/env bash
# Builds the meetings-cdc image without a Docker engine or Docker Hub: buildah (chroot
# isolation) on a Debian bookworm + Python 3.11 base that debootstrap makes from Debian's own
# packages. Idempotent: the bootstrapped root filesystem is cached as a tarball under
# ~/.cache/meetings-cdc/image/ (a machine pays for debootstrap once), the base image is
# committed once into buildah's storage, and the final build reuses buildah's layer cache.
#
#   deploy/image/build.sh            # -> localhost/meetings-cdc:test
#   IMAGE=localhost/meetings-cdc:dev deploy/image/build.sh
#   WITH_SIMULATOR=true IMAGE=localhost/meetings-cdc:demo deploy/image/build.sh   # + simulator
#
# Users with Docker build the Dockerfile directly on the public python:3.11-slim-bookworm.
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE="${IMAGE:-localhost/meetings-cdc:test}"
BASE_IMAGE="${BASE_IMAGE:-localhost/meetings-cdc-base:bookworm}"
# The Dockerfile's WITH_SIMULATOR: true also installs the API simulator (the demo image).
WITH_SIMULATOR="${WITH_SIMULATOR:-false}"
CACHE="${MEETINGS_CDC_IMAGE_CACHE:-$HOME/.cache/meetings-cdc/image}"
ROOTFS_TAR="$CACHE/debian-bookworm-python3.11.tar"
# Debian packages of the base: the interpreter, venv (ensurepip), useradd/groupadd.
PACKAGES="python3.11,python3.11-venv,python3-venv,passwd,ca-certificates"
export BUILDAH_ISOLATION=chroot
# buildah's default storage (/var/lib/containers/storage, overlay); STORAGE_DRIVER=vfs and
# CONTAINERS_STORAGE_CONF are honoured by buildah itself where overlay cannot mount.

log() { echo "image: $*" >&2; }

# The Debian mirror apt on this machine uses (deb822 or one-line sources), else deb.debian.org.
debian_mirror() {
    local uri
    uri="$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* \
        | grep -E 'debian/?( |$)' | grep -v security | head -n 1 \
        | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//; s/[[:space:]].*$//')"
    echo "${uri:-http://deb.debian.org/debian}"
}

bootstrap_rootfs() {
    local mirror dir
    mirror="$(debian_mirror)"
    dir="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    log "debootstrap bookworm from $mirror (once per machine, cached in $ROOTFS_TAR)"
    if ! debootstrap --variant=minbase --include="$PACKAGES" bookworm "$dir" "$mirror" \
        >"$CACHE/debootstrap.log" 2>&1; then
        tail -n 30 "$CACHE/debootstrap.log" >&2
        rm -rf "$dir"
        log "debootstrap failed (full log: $CACHE/debootstrap.log)"
        exit 1
    fi
    # The official image has `python`; the Dockerfile uses python3, but keep both working.
    ln -sf python3 "$dir/usr/bin/python"
    # Nothing of apt's download cache or lists belongs in an image.
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" --numeric-owner -cf "$ROOTFS_TAR.partial" .
    mv "$ROOTFS_TAR.partial" "$ROOTFS_TAR"
    rm -rf "$dir"
}

commit_base() {
    local ctr mnt
    log "importing $ROOTFS_TAR as $BASE_IMAGE"
    ctr="$(buildah from scratch)"
    mnt="$(buildah mount "$ctr")"
    tar -C "$mnt" --numeric-owner -xf "$ROOTFS_TAR"
    # This machine's CA bundle (it may reach PyPI through a TLS-inspecting proxy whose CA only
    # the host trusts): pip inside the build verifies with it. Only this local base gets it.
    if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
        cp /etc/ssl/certs/ca-certificates.crt "$mnt/etc/ssl/certs/ca-certificates.crt"
    fi
    buildah umount "$ctr" >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --cmd python3 "$ctr"
    buildah commit --quiet --rm "$ctr" "$BASE_IMAGE" >/dev/null
}

if [ "$(id -u)" -ne 0 ]; then
    log "needs root (debootstrap; buildah's chroot isolation with the system storage): run it with sudo"
    exit 1
fi
mkdir -p "$CACHE"
command -v buildah >/dev/null || { log "buildah is not installed (.ci/install-system-packages)"; exit 1; }
if ! buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    if [ ! -s "$ROOTFS_TAR" ]; then
        command -v debootstrap >/dev/null || { log "debootstrap is not installed"; exit 1; }
        bootstrap_rootfs
    fi
    commit_base
fi

log "building $IMAGE on $BASE_IMAGE"
buildah bud --isolation chroot --format docker --layers --force-rm --quiet \
    --build-arg PYTHON_IMAGE="$BASE_IMAGE" --build-arg WITH_SIMULATOR="$WITH_SIMULATOR" \
    -t "$IMAGE" . >/dev/null
log "built $IMAGE"
