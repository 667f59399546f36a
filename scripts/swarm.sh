#!/usr/bin/env bash
# `make swarm-up` / `make swarm-down`: the lab as a Docker stack on this engine's swarm.
#
#   scripts/swarm.sh up     init a single-node swarm if the engine has none (and remember that we
#                           did), deploy deploy/stack.yaml as stack "lab", wait for the server to
#                           run and the client's demo to finish, and show the demo's transcript
#   scripts/swarm.sh down   remove the stack; leave swarm mode only if `up` was what entered it
#
# The docker CLI it runs honours DOCKER_HOST, like every docker command.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;; esac  # the comment above
cd "$(dirname "$0")/.."
STACK=${LAB_STACK:-lab}
MARK=${LAB_SWARM_MARK:-.swarm-initialised-by-lab}  # written when `up` ran `docker swarm init`
WAIT_S=${LAB_SWARM_WAIT_S:-120}

say() { echo "swarm: $*"; }
fail() { echo "swarm: error: $*" >&2; exit 1; }

# Swarm's VIP load balancing and its ingress routing mesh need the kernel's IPVS (ip_vs). The
# stack never uses them (endpoint_mode: dnsrr, nothing published through ingress); say so where
# they could not work anyway, in one line rather than in dockerd's log.
ipvs_note() {
  if [ -e /proc/net/ip_vs ] || modprobe -n -q ip_vs 2>/dev/null; then
    say "this kernel has IPVS: endpoint_mode vip would work too (see the README)"
  else
    say "this kernel has no IPVS (ip_vs): no VIP, no ingress routing mesh; the stack uses" \
        "endpoint_mode dnsrr, so the service name resolves to the tasks' own addresses"
  fi
}

service_state() {  # the newest task's state of a service: running, complete, failed, ...
  docker service ps "$1" --format '{{.CurrentState}}' 2>/dev/null | head -n 1 | awk '{print tolower($1)}'
}

up() {
  command -v docker >/dev/null || fail "the docker CLI is missing"
  state=$(docker info --format '{{.Swarm.LocalNodeState}}')
  case "$state" in
    active) say "the engine is already in a swarm: deploying there (swarm-down will leave it on)" ;;
    inactive)
      docker swarm init --advertise-addr 127.0.0.1 >/dev/null \
        || fail "docker swarm init failed (see above)"
      touch "$MARK"
      say "initialised a single-node swarm on this engine (swarm-down will leave it again)" ;;
    *) fail "the engine's swarm is '$state'; fix that first (docker info)" ;;
  esac
  ipvs_note
  for image in server client; do
    docker image inspect "sockets-lab/$image:${LAB_IMAGE_TAG:-latest}" >/dev/null 2>&1 \
      || fail "image sockets-lab/$image:${LAB_IMAGE_TAG:-latest} is missing: run make build"
  done
  # --resolve-image never: the images are local (no registry to ask for a digest).
  docker stack deploy --resolve-image never --compose-file deploy/stack.yaml "$STACK"
  say "waiting for the server to run and the client's demo to finish (at most ${WAIT_S}s)"
  deadline=$(( $(date +%s) + WAIT_S ))
  until [ "$(service_state "${STACK}_client")" = complete ] \
        || [ "$(service_state "${STACK}_client")" = failed ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "the demo did not finish in ${WAIT_S}s:
$(docker service ps --no-trunc "${STACK}_server" "${STACK}_client")"
    sleep 1
  done
  docker service logs --raw "${STACK}_client"
  [ "$(service_state "${STACK}_client")" = complete ] || fail "the demo failed (transcript above)"
  say "stack '$STACK' is up: docker stack services $STACK; make swarm-down removes it"
}

down() {
  if docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$STACK"; then
    # The stack's network can go only once its tasks are gone. An engine's CLI before 23.0
    # removes the services and then, at once, the network, which fails ("in use by task")
    # while the tasks stop: ask again until the network is gone (a minute at most), so that
    # leaving the swarm (or a new deploy) does not race it.
    for _ in $(seq 60); do
      docker stack rm "$STACK" >/dev/null 2>&1 || true
      docker network ls --format '{{.Name}}' | grep -qx "${STACK}_labnet" || break
      sleep 1
    done
    if docker network ls --format '{{.Name}}' | grep -qx "${STACK}_labnet"; then
      docker stack rm "$STACK" >/dev/null || true  # its error, shown
      fail "stack '$STACK' still has its network after a minute (docker stack ps $STACK)"
    fi
    say "removed stack '$STACK'"
  fi
  if [ -f "$MARK" ]; then
    docker swarm leave --force >/dev/null
    rm -f "$MARK"
    say "left swarm mode (swarm-up had entered it)"
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
