#!/usr/bin/env bash
# Builds the local Debian 12 base image `resbm/debian:bookworm` from Debian's packages
# (debootstrap, then docker import): no image registry is needed, only an apt mirror.
# Idempotent: does nothing when the image exists. Needs root, debootstrap and dockerd.
set -euo pipefail
image="${RESBM_BASE_IMAGE:-resbm/debian:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image exists"
  exit 0
fi
rootfs="$(mktemp -d /var/tmp/resbm-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase bookworm "$rootfs" "$mirror"
# Same sources as the host would use; apt lists are fetched again in the image builds.
echo "deb $mirror bookworm main" > "$rootfs/etc/apt/sources.list"
echo "deb $mirror bookworm-updates main" >> "$rootfs/etc/apt/sources.list"
echo "deb http://deb.debian.org/debian-security bookworm-security main" \
  >> "$rootfs/etc/apt/sources.list"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import - "$image"
echo "built base image $image"
