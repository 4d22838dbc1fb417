#!/usr/bin/env bash
# `./dev.sh compose CMD`: the lab as containers (docker-compose.yml) on a private Docker engine.
#
#   up            start the engine, build the images, bring the lab up, wait until all is ready
#   call [ARGS]   alice calls bob (or: `imslab call` ARGS, e.g. carol sip:bob@ims-b.test)
#   li ARGS       the ADMF: `imslab li ARGS` against the lab (e.g. task add --operator a
#                 --target sip:alice@ims-a.test; task list)
#   lemf [PATH]   list (or print) what the LEMF wrote, inside the LEMF container
#   ps | logs [SERVICE]
#   docker ARGS   any docker command against the private engine (e.g. docker compose top)
#   down          the lab and the engine down; the host checked to be as it was before `up`
#   purge         down, then delete the engine's images and cache (IMSLAB_ENGINE_DIR)
#   ci            the CI stage (deploy/compose-ci.sh): up, calls, LI end to end, down
#
# Needs root (dockerd). The engine lives in IMSLAB_ENGINE_DIR (default /var/lib/imslab-engine):
# its own data root, exec root, socket; no iptables rules, no docker0, no IP forwarding.
# With your own Docker engine and compose v2 instead: `docker compose up -d` in the repository
# (the Dockerfile's default BASE is python:3.11-slim-bookworm from Docker Hub).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. deploy/engine.sh

CONFIG=/opt/imslab/lab/lab.toml
SUBNET=10.231.7
engine_paths "${IMSLAB_ENGINE_DIR:-/var/lib/imslab-engine}"
compose() {
    dk compose --ansi never --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" "$@"
}
need_engine() { engine_running || { log "the lab is not up: ./dev.sh compose up"; exit 1; }; }

up() {
    [ "${IMSLAB_NO_APT:-0}" = 1 ] || engine_apt
    if ! engine_running; then host_state > "$ENGINE_DIR.host-state"; fi
    compose_plugin
    engine_start
    base_image "imslab-base:$(host_suite)"
    project_image "$ROOT" "imslab-base:$(host_suite)"
    lab_up
    echo "the lab is up: ./dev.sh compose call | li ... | lemf | logs | down"
}

down() {
    if engine_running; then
        compose --profile call --profile li down -v --remove-orphans -t 5
    fi
    [ -f "$ENGINE_DIR.host-state" ] && ENGINE_FIXED_BEFORE=$(grep '^path ' "$ENGINE_DIR.host-state" || true)
    engine_stop
    if [ -f "$ENGINE_DIR.host-state" ]; then
        engine_remove_bridges "$(cat "$ENGINE_DIR.host-state")"
        if ! diff <(cat "$ENGINE_DIR.host-state") <(host_state) >&2; then
            log "the host differs from before \`up\` (above)"; return 1
        fi
        rm -f "$ENGINE_DIR.host-state"
        log "engine stopped; the host is as it was before \`up\`"
    fi
}

cmd=${1:-help}
shift || true
case "$cmd" in
    up) up ;;
    call)
        need_engine
        [ $# -eq 0 ] && set -- alice sip:bob@ims-b.test
        compose --profile call run --rm call imslab call "$@" --config "$CONFIG" --subnet "$SUBNET" ;;
    li)
        need_engine
        compose --profile li run --rm admf imslab li "$@" --config "$CONFIG" --subnet "$SUBNET" ;;
    lemf)
        need_engine
        if [ $# -eq 0 ]; then
            compose exec -T lemf sh -c 'cd "$IMSLAB_STATE" && find . -path "*lemf*" -type f | sort'
        else
            compose exec -T lemf sh -c 'cd "$IMSLAB_STATE" && cat -- "$1"' sh "$1"
        fi ;;
    ps) need_engine; compose ps ;;
    logs) need_engine; compose logs --no-color "$@" ;;
    docker) need_engine; dk "$@" ;;
    down) down ;;
    purge)
        down
        if awk -v d="$ENGINE_DIR" 'index($5, d) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
            log "mounts remain under $ENGINE_DIR: not deleting it"; exit 1
        fi
        rm -rf "$ENGINE_DIR" "$ENGINE_CACHE" ;;
    ci) exec deploy/compose-ci.sh ;;
    *) sed -n '2,19p' "$0"; exit 2 ;;
esac
