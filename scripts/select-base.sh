#!/usr/bin/env bash
# Choose the base image the Dockerfiles build FROM, and record it in .env so that plain
# `docker compose` uses it too:
#   1. the base already recorded in .env, if that image is here;
#   2. the public Python image, if it is here or can be pulled;
#   3. the offline base (scripts/build-base.sh, from Debian's packages), built if missing.
# Set BASE_IMAGE in the environment to force a choice.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;; esac  # the comment above
cd "$(dirname "$0")/.."

PUBLIC=${PUBLIC_BASE_IMAGE:-python:3.11-slim-bookworm}
OFFLINE=${OFFLINE_BASE_IMAGE:-sockets-lab/base:bookworm}
have() { docker image inspect "$1" >/dev/null 2>&1; }
# An offline base from an older recipe of build-base.sh (recipe 1 left / at mode 0700) is rebuilt.
RECIPE=$(sed -n 's/^RECIPE=//p' scripts/build-base.sh)
stale() {
  [ "$1" = "$OFFLINE" ] && have "$1" && [ "$(docker image inspect -f \
    '{{index .Config.Labels "org.sockets-lab.base.recipe"}}' "$1")" != "$RECIPE" ]
}
if stale "$OFFLINE"; then
  echo "select-base: $OFFLINE is from an older recipe of build-base.sh; rebuilding it" >&2
  scripts/build-base.sh "$OFFLINE"
fi

record() {
  local others=""
  [ -f .env ] && others=$(grep -v '^BASE_IMAGE=' .env || true)
  { [ -n "$others" ] && printf '%s\n' "$others"; printf 'BASE_IMAGE=%s\n' "$1"; } >.env.tmp
  mv .env.tmp .env
  echo "select-base: building FROM $1 ($2; recorded in .env)" >&2
}

if [ -n "${BASE_IMAGE:-}" ]; then
  have "$BASE_IMAGE" || docker pull "$BASE_IMAGE" >&2 || {
    [ "$BASE_IMAGE" = "$OFFLINE" ] && scripts/build-base.sh "$OFFLINE"; }
  record "$BASE_IMAGE" "from BASE_IMAGE"
  exit 0
fi
recorded=$( [ -f .env ] && sed -n 's/^BASE_IMAGE=//p' .env | tail -n 1 || true)
if [ -n "$recorded" ] && have "$recorded"; then
  exit 0  # already recorded, and here: nothing to say
elif have "$PUBLIC" || timeout 120 docker pull --quiet "$PUBLIC" >/dev/null 2>&1; then
  record "$PUBLIC" "public image"
else
  have "$OFFLINE" || scripts/build-base.sh "$OFFLINE"
  record "$OFFLINE" "$PUBLIC cannot be pulled here: offline base from Debian's packages"
fi
