#!/usr/bin/env bash
# The compose lab on a real container engine, end to end (the CI stage `./dev.sh test` runs as root).
#
#   deploy/compose-ci.sh            install docker.io/debootstrap if missing, then:
#   1. a private dockerd (own data root, exec root, pidfile, socket; no iptables, no docker0)
#   2. the base image from the apt mirror (cached tarball), the project image from the Dockerfile
#   3. `docker compose up` of docker-compose.yml; every element reports ready
#   4. a call with no LI task: the LEMF must write nothing (nobody intercepted without a task)
#   5. an X1 task through the admf service, a call, and the LEMF output checked inside the LEMF
#      container (deploy/check_lemf.py: IRI, keys, both WAVs with the tones); the tasked elements
#      restarted and the next call intercepted too (tasks survive a restart); the task removed
#      and the next call leaves nothing new
#   6. teardown (also on failure or Ctrl-C): compose down, dockerd stopped, its mounts, bridges,
#      cgroups and directory removed; the host's state (links, forwarding, firewall, mounts, engine
#      processes, cgroups) compared with the state before the run: any difference fails the stage.
#
# IMSLAB_CACHE (default ~/.cache/imslab) keeps the base tarball and the compose plugin between runs.
# IMSLAB_SAVE_IMAGE=FILE also saves the project image there (`docker save`) for two-host-ci.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. deploy/engine.sh

[ "$(id -u)" -eq 0 ] || { log "compose-ci needs root (dockerd); skipped"; exit 0; }

SUBNET=10.231.7
CONFIG=/opt/imslab/lab/lab.toml
BASE_TAG=imslab-base:$(host_suite)
CALLER_HZ=440 CALLEE_HZ=1000          # `imslab call` and `imslab run ue` defaults
T0=$SECONDS
declare -a TIMES=()
phase() { TIMES+=("$(printf '%-28s %4ss' "$1" $((SECONDS - T_PHASE)))"); T_PHASE=$SECONDS; }
T_PHASE=$SECONDS

if [ "${IMSLAB_NO_APT:-0}" = 1 ]; then
    { [ -x "$ENGINE_DOCKERD" ] && command -v debootstrap >/dev/null; } ||
        { log "IMSLAB_NO_APT=1 and no docker.io/debootstrap installed: skipped"; exit 0; }
else
    engine_apt
fi
phase "apt (docker.io, debootstrap)"
BEFORE=$(host_state)
ENGINE_FIXED_BEFORE=$(fixed_paths)
engine_paths "$(mktemp -d /var/tmp/imslab-ci.XXXXXX)"
compose() {
    dk compose --ansi never --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" -p imslab-ci "$@"
}

teardown() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if engine_running; then
        if [ $rc -ne 0 ]; then
            log "failed (exit $rc): the lab's logs:"
            compose logs --no-color --tail 30 >&2
        fi
        [ $rc -ne 0 ] && phase "(failed phase)"
        timeout 60 "$ENGINE_DOCKER" compose --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" \
            -p imslab-ci --profile call --profile li down -v --remove-orphans -t 5 >/dev/null 2>&1
        phase "compose down"
    fi
    engine_stop
    phase "dockerd stop"
    engine_remove_bridges "$BEFORE"
    if awk -v d="$ENGINE_DIR" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
        log "mounts still under $ENGINE_DIR: not removing it"; rc=1
    else
        rm -rf "$ENGINE_DIR"
    fi
    local after
    after=$(host_state)
    if [ "$after" != "$BEFORE" ]; then
        log "the host is not as it was before the run:"
        diff <(echo "$BEFORE") <(echo "$after") >&2
        rc=1
    else
        log "host state after teardown = before ($(wc -l <<<"$BEFORE") facts compared)"
    fi
    phase "teardown"
    printf '%s\n' "${TIMES[@]}" >&2
    log "compose stage: $((SECONDS - T0)) s, exit $rc"
    exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

compose_plugin
engine_start
phase "dockerd + compose plugin"
base_image "$BASE_TAG"
phase "base image"
project_image "$ROOT" "$BASE_TAG"
if [ -n "${IMSLAB_SAVE_IMAGE:-}" ]; then  # for deploy/two-host-ci.sh, run next by ./dev.sh test
    dk save -o "$IMSLAB_SAVE_IMAGE" imslab:latest
fi
phase "project image"

lab_up
phase "compose up"

# a call with no task: the LEMF writes nothing
compose --profile call run --rm call imslab call alice sip:bob@ims-b.test \
    --config "$CONFIG" --subnet "$SUBNET" --duration 2
if compose exec -T lemf sh -c 'find "$IMSLAB_STATE" -name summary.json | grep -q .'; then
    log "the LEMF wrote a call although no task was active"; exit 1
fi
phase "call without a task"

XID=$(cat /proc/sys/kernel/random/uuid)
compose --profile li run --rm admf imslab li task add --config "$CONFIG" --subnet "$SUBNET" \
    --operator a --target sip:alice@ims-a.test --xid "$XID"
compose --profile call run --rm call imslab call alice sip:bob@ims-b.test \
    --config "$CONFIG" --subnet "$SUBNET" --duration 3
compose exec -T lemf python3 - "$XID" "$CALLER_HZ" "$CALLEE_HZ" < deploy/check_lemf.py
phase "LI task + call + LEMF check"

# the tasked elements restarted (SIGTERM, new containers' processes): the task is active again
# from the NEs' state on the volume, and the next call is intercepted too
compose restart -t 5 pcscf-a scscf-a anchor-a
for i in $(seq 1 120); do
    waiting=""
    for s in pcscf-a scscf-a anchor-a; do  # each printed "ready" twice: before and after
        n=$(compose logs --no-color "$s" 2>/dev/null | grep -c "ready" || true)
        [ "$n" -ge 2 ] || waiting+=" $s"
    done
    [ -z "$waiting" ] && break
    [ "$i" -eq 120 ] && { log "not ready after the restart:$waiting"; exit 1; }
    sleep 0.5
done
compose --profile call run --rm call imslab call alice sip:bob@ims-b.test \
    --config "$CONFIG" --subnet "$SUBNET" --duration 2
compose exec -T lemf python3 - "$XID" "$CALLER_HZ" "$CALLEE_HZ" 2 < deploy/check_lemf.py
phase "restart + call intercepted"

# deactivated: the next call leaves nothing new at the LEMF
compose --profile li run --rm admf imslab li task remove --config "$CONFIG" --subnet "$SUBNET" \
    --operator a "$XID"
compose --profile call run --rm call imslab call alice sip:bob@ims-b.test \
    --config "$CONFIG" --subnet "$SUBNET" --duration 1
compose exec -T lemf python3 - "$XID" "$CALLER_HZ" "$CALLEE_HZ" 2 < deploy/check_lemf.py
if compose exec -T lemf sh -c 'find "$IMSLAB_STATE" -name summary.json' | grep -v "$XID" | grep -q .; then
    log "the LEMF wrote a call of no task"; exit 1
fi
phase "task removed, call not intercepted"
log "OK: compose lab on dockerd $(dk version -f '{{.Server.Version}}'), LI end to end"
