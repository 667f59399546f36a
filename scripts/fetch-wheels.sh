#!/usr/bin/env bash
# Download the benchmark's PyPI peers (services/labbench/peers.txt, pinned by hash) as wheels into
# services/labbench/wheels/, where the tools image's build unpacks them: the image needs no pip and
# no network. Runs on the host, with the host's pip; a no-op once the wheels are there.
# If PyPI cannot be reached, it says so in one line and the tools image builds without them:
# the benchmark then reports those peers as not available (nothing else needs them).
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;; esac  # the comment above
cd "$(dirname "$0")/.."

REQUIREMENTS=services/labbench/peers.txt
DEST=services/labbench/wheels
# The engine's architecture (the images are built for it), as a manylinux platform tag.
case "$(docker version --format '{{.Server.Arch}}' 2>/dev/null || uname -m)" in
  amd64 | x86_64) ARCH=x86_64 ;;
  arm64 | aarch64) ARCH=aarch64 ;;
  *) echo "fetch-wheels: no wheels for this architecture; the benchmark's PyPI peers are off"; exit 0 ;;
esac
stamp="$DEST/.fetched-$ARCH-$(sha256sum "$REQUIREMENTS" | cut -c1-16)"
[ -e "$stamp" ] && exit 0

rm -rf "$DEST" && mkdir -p "$DEST"
if python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
     --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 \
     --platform "manylinux_2_17_$ARCH" --dest "$DEST" -r "$REQUIREMENTS" 2>"$DEST/.error"; then
  touch "$stamp"
  echo "fetch-wheels: $(cd "$DEST" && ls ./*.whl | xargs -n1 basename | tr '\n' ' ')"
else
  echo "fetch-wheels: could not download the benchmark's PyPI peers ($(tail -n 1 "$DEST/.error")); the tools image builds without them"
  rm -f "$DEST"/*.whl
fi
rm -f "$DEST/.error"
