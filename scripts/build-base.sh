#!/usr/bin/env bash
# Build a lean Debian + python3 base image from Debian's packages, for machines
# that cannot pull the public python image (no registry). Needs root and docker.
#
#   scripts/build-base.sh [TAG] [EXTRA_PACKAGES]
#
# debootstrap --variant=minbase gives dpkg/apt and little else; we add python3
# (not python3-minimal, which lacks much of the standard library, e.g. asyncio),
# then drop what a container never reads: apt caches and lists, docs, man pages,
# locales. The result is imported as a single-layer image.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;; esac  # the comment above

TAG=${1:-sockets-lab/base:bookworm}
EXTRA=${2:-}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3${EXTRA:+,$EXTRA}
# Bumped when this recipe changes what an image holds, so select-base.sh rebuilds an older one.
RECIPE=2

if ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "build-base: installing debootstrap from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  else
    echo "build-base: debootstrap is missing; install it (apt-get install debootstrap) and retry" >&2
    exit 1
  fi
fi

rootfs=$(mktemp -d /tmp/sockets-lab-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

echo "build-base: debootstrap $SUITE ($PACKAGES) from $MIRROR" >&2
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1; then
  tail -n 20 "$rootfs.log" >&2
  echo "build-base: debootstrap failed (log above)" >&2
  rm -f "$rootfs.log"
  exit 1
fi
rm -f "$rootfs.log"

# Trim what no container reads. Keep dpkg/apt themselves so the image stays a
# normal Debian that a Dockerfile could still apt-get into on a connected machine.
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
       "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
       "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian "$rootfs"/var/log/* \
       "$rootfs"/usr/share/common-licenses "$rootfs"/usr/share/zoneinfo/right \
       "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old
find "$rootfs"/usr/lib/python3* -name '__pycache__' -prune -exec rm -rf {} +
find "$rootfs"/usr/lib/python3* -type d \( -name test -o -name tests -o -name idlelib -o -name turtledemo \) -prune -exec rm -rf {} +

# mktemp -d made the folder 0700, and it is tarred as `./`: the image's root directory would be
# 0700. Overlay drivers hide that behind their own upper directory; vfs (the storage driver of
# the cluster's Docker-in-Docker nodes) and other snapshotters do not, and then a non-root user
# cannot even reach /usr/bin/python3. A root directory is 0755.
chmod 0755 "$rootfs"

tar -C "$rootfs" --numeric-owner -c . | docker import \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "LABEL org.sockets-lab.base=true org.sockets-lab.base.recipe=$RECIPE" \
  --change 'CMD ["python3"]' \
  --message "sockets-lab offline base: debootstrap $SUITE + $PACKAGES" \
  - "$TAG" >/dev/null
echo "build-base: built $TAG ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))" >&2
