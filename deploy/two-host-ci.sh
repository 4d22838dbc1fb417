#!/usr/bin/env bash
# The two-host deployment end to end (deploy/two-host/): operator A and the LI agency on host A,
# operator B and its media provider on host B, each host a network namespace with its own Docker
# engine and its own compose project, the two routed to each other over a veth link.
#
#   host A (netns imslab-2h-a)              routed link 10.231.90.0/30       host B (netns imslab-2h-b)
#   10.231.91.0/24: pcscf-a scscf-a     .1 ----------------------- .2    10.231.92.0/24: pcscf-b
#   anchor-a lemf (+ admf, call=alice)                                    scscf-b anchor-m bob
#
# 1. the image is built once by a private engine in the host's namespace (the build needs the
#    network; as deploy/compose-ci.sh), or taken from IMSLAB_IMAGE_TAR (`docker save` output, as
#    `./dev.sh test` passes it from compose-ci), and loaded into the two hosts' engines;
# 2. each host: its engine in its namespace, `compose up`, every element ready;
# 3. an X1 task on alice through host A's admf; alice (host A) calls bob (host B): SIP and SRTP
#    cross the routed link, operator B's IRI reaches the LEMF on host A; the LEMF output is
#    checked inside the LEMF container (deploy/check_lemf.py);
# 4. teardown (also on failure): both projects down, the three engines stopped, the namespaces
#    deleted; the host state compared with the state before (deploy/engine.sh host_state).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. deploy/engine.sh
[ "$(id -u)" -eq 0 ] || { log "two-host needs root (dockerd, namespaces); skipped"; exit 0; }

NS_A=imslab-2h-a NS_B=imslab-2h-b
CONFIG=/etc/imslab/lab.toml
BASE_TAG=imslab-base:$(host_suite)
T0=$SECONDS
declare -a TIMES=()
T_PHASE=$SECONDS
phase() { TIMES+=("$(printf '%-28s %4ss' "$1" $((SECONDS - T_PHASE)))"); T_PHASE=$SECONDS; }

if [ "${IMSLAB_NO_APT:-0}" = 1 ]; then
    { [ -x "$ENGINE_DOCKERD" ] && command -v debootstrap >/dev/null; } ||
        { log "IMSLAB_NO_APT=1 and no docker.io/debootstrap installed: skipped"; exit 0; }
else
    engine_apt
fi
for ns in $NS_A $NS_B; do
    if ip netns list 2>/dev/null | grep -qw "$ns"; then log "namespace $ns exists: another run?"; exit 1; fi
done
BEFORE=$(host_state)
ENGINE_FIXED_BEFORE=$(fixed_paths)
WORK=$(mktemp -d /var/tmp/imslab-2h.XXXXXX)
DIRS=("$WORK/build" "$WORK/a" "$WORK/b")
use() {  # use build|a|b: point the client (and engine_* functions) at that engine
    case $1 in
        build) engine_paths "$WORK/build" ;;
        a) engine_paths "$WORK/a" "$NS_A" ;;
        b) engine_paths "$WORK/b" "$NS_B" ;;
    esac
}
project() {  # project a|b ARGS: docker compose for that host's project
    local h=$1
    shift
    use "$h"
    dk compose --ansi never --project-directory "$ROOT/deploy/two-host" \
        -f "$ROOT/deploy/two-host/compose-$h.yml" "$@"
}

teardown() {
    local rc=$? h
    trap - EXIT INT TERM
    set +e
    for h in a b; do
        use "$h"
        if engine_running; then
            [ $rc -ne 0 ] && { log "host $h's logs:"; project "$h" logs --no-color --tail 20 >&2; }
            timeout 60 "$ENGINE_DOCKER" compose --project-directory "$ROOT/deploy/two-host" \
                -f "$ROOT/deploy/two-host/compose-$h.yml" --profile call --profile li \
                down -v -t 5 >/dev/null 2>&1
        fi
    done
    for h in a b build; do use "$h"; engine_stop; done
    phase "down + engines stopped"
    for ns in $NS_A $NS_B; do ip netns del "$ns" 2>/dev/null; done
    use build
    engine_remove_bridges "$BEFORE"
    if awk -v d="$WORK" 'index($5, d) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
        log "mounts still under $WORK: not removing it"; rc=1
    else
        rm -rf "$WORK"
    fi
    local after
    after=$(host_state)
    if ip netns list 2>/dev/null | grep -Eq "$NS_A|$NS_B"; then log "namespaces left behind"; rc=1; fi
    if [ "$after" != "$BEFORE" ]; then
        log "the host is not as it was before the run:"
        diff <(echo "$BEFORE") <(echo "$after") >&2
        rc=1
    else
        log "host state after teardown = before ($(wc -l <<<"$BEFORE") facts compared)"
    fi
    phase "teardown"
    printf '%s\n' "${TIMES[@]}" >&2
    log "two-host stage: $((SECONDS - T0)) s, exit $rc"
    exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- the image, built once (or the one deploy/compose-ci.sh just built: IMSLAB_IMAGE_TAR) -------
IMAGE_TAR=$WORK/imslab.tar
if [ -n "${IMSLAB_IMAGE_TAR:-}" ] && [ -s "$IMSLAB_IMAGE_TAR" ]; then
    IMAGE_TAR=$IMSLAB_IMAGE_TAR
    phase "image from compose-ci"
else
    use build
    compose_plugin
    engine_start
    base_image "$BASE_TAG"
    project_image "$ROOT" "$BASE_TAG"
    dk save -o "$IMAGE_TAR" imslab:latest
    engine_stop
    rm -rf "$WORK/build/data"
    phase "image built and saved"
fi

# --- two hosts and the routed link ------------------------------------------------------------
ip netns add $NS_A
ip netns add $NS_B
ip link add imslab2h-a type veth peer name imslab2h-b
ip link set imslab2h-a netns $NS_A
ip link set imslab2h-b netns $NS_B
ip -n $NS_A addr add 10.231.90.1/30 dev imslab2h-a
ip -n $NS_B addr add 10.231.90.2/30 dev imslab2h-b
for ns in $NS_A $NS_B; do
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "imslab2h-${ns##*-}" up
    # each host routes between its container network and the link (this namespace only)
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
done
ip -n $NS_A route add 10.231.92.0/24 via 10.231.90.2
ip -n $NS_B route add 10.231.91.0/24 via 10.231.90.1
for h in a b; do
    use "$h"
    compose_plugin
    engine_start
    dk load -q -i "$IMAGE_TAR" >/dev/null
done
[ "$IMAGE_TAR" = "$WORK/imslab.tar" ] && rm -f "$IMAGE_TAR"
phase "hosts, link, engines"

for h in b a; do  # B first: A's calls go to B
    compose() { project "$CURRENT" "$@"; }
    CURRENT=$h
    lab_up
done
phase "both projects up"

XID=$(cat /proc/sys/kernel/random/uuid)
project a --profile li run --rm admf imslab li task add --config "$CONFIG" \
    --operator a --target sip:alice@ims-a.test --xid "$XID"
project a --profile call run --rm call imslab call alice sip:bob@ims-b.test \
    --config "$CONFIG" --duration 3
project a exec -T lemf python3 - "$XID" 440 1000 < deploy/check_lemf.py
# the call crossed hosts: host B's containers reach host A's network through the link
ip netns exec $NS_B ip route get 10.231.91.60 | grep -q "via 10.231.90.1"
phase "LI task + call across hosts"
log "OK: two hosts, two engines, one call A -> B across the routed link, LI end to end"
