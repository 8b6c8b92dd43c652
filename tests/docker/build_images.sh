#!/usr/bin/env bash
# Build the Docker sandbox's test image locally (no registry is needed or used) and print its tag.
#
# The image: Debian bookworm made with `debootstrap --variant=minbase --include=python3,
# python3-pytest,git` from this machine's configured Debian mirror, imported with `docker import`.
# The bundled tasks' projects need nothing but pytest; their checkouts are copied in by the
# sandbox at start. The tag holds a hash of the recipe: a second run finds it and is instant,
# and a changed recipe builds a new image.
#
# Usage: tests/docker/build_images.sh        (as root; needs debootstrap and a Docker engine)
# Env:   SWEREPAIR_DEBIAN_MIRROR overrides the mirror read from /etc/apt.
set -euo pipefail

SUITE=bookworm
PACKAGES=python3,python3-pytest,git
RECIPE="debootstrap --variant=minbase --include=$PACKAGES $SUITE; docker import; v1"
TAG="swerepair-test-base:$SUITE-$(printf '%s' "$RECIPE" | sha256sum | cut -c1-12)"

if docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "$TAG"
  exit 0
fi

mirror() {
  if [ -n "${SWEREPAIR_DEBIAN_MIRROR:-}" ]; then echo "$SWEREPAIR_DEBIAN_MIRROR"; return; fi
  local f=/etc/apt/sources.list.d/debian.sources
  if [ -r "$f" ]; then
    # deb822: the URIs of the first stanza whose Suites name the suite itself (not -security)
    awk -v suite="$SUITE" '
      /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0; next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
      END { if (uri != "" && ok) print uri }' "$f" | head -n1
    return
  fi
  if [ -r /etc/apt/sources.list ]; then
    awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }' /etc/apt/sources.list
    return
  fi
}
MIRROR=$(mirror)
MIRROR=${MIRROR:-http://deb.debian.org/debian}

command -v debootstrap >/dev/null || { echo "build_images.sh: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "build_images.sh: debootstrap needs root" >&2; exit 1; }

ROOTFS=$(mktemp -d /var/tmp/swerepair-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
echo "building $TAG from $MIRROR (debootstrap, a few minutes)" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" >&2
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  - "$TAG" >&2
echo "$TAG"
