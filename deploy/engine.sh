# shellcheck shell=bash
# A private Docker engine for the compose lab, sourced by deploy/compose-ci.sh and `./dev.sh compose`.
#
# Debian's docker.io (dockerd 20.10) started with its own data root, exec root, pidfile, socket,
# config file and cgroup parent under ENGINE_DIR, so it never meets another engine on the machine.
# It also never touches the host's firewall or forwarding: --iptables=false, --ip-forward=false,
# --ip-masq=false and --bridge=none (no docker0). The compose lab needs none of them: its
# containers talk over one user-defined bridge and publish no ports; image builds use the host's
# network (--network=host). engine_stop leaves nothing behind (processes, mounts, bridges,
# cgroups) and host_state is what compose-ci.sh compares before and after to prove it.
#
# No Docker Hub here: base_image builds a Debian image with python3 and pip from the apt mirror the
# machine already uses (debootstrap + docker import), cached as a tarball keyed by the mirror, the
# suite, the package list and the host's extra CA certificates.

ENGINE_DOCKER=${IMSLAB_DOCKER:-/usr/bin/docker}          # Debian's client, not whatever is on PATH
ENGINE_DOCKERD=${IMSLAB_DOCKERD:-/usr/sbin/dockerd}
ENGINE_CACHE=${IMSLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imslab}
BASE_PACKAGES=(python3 python3-pip ca-certificates iproute2)
BASE_MAX_AGE_DAYS=7            # rebuild the cached base at least weekly (security updates)
ENGINE_APT_PACKAGES=(docker.io debootstrap)

log() { echo "deploy: $*" >&2; }

# engine_paths DIR [NETNS]: every path of the private engine, and the client environment pointing
# at it; with NETNS, dockerd (and so its bridges and containers) runs in that network namespace.
engine_paths() {
    ENGINE_DIR=$1
    ENGINE_DATA=$ENGINE_DIR/data
    ENGINE_EXEC=$ENGINE_DIR/run
    ENGINE_PIDFILE=$ENGINE_DIR/dockerd.pid
    ENGINE_SOCK=$ENGINE_DIR/docker.sock
    export DOCKER_HOST=unix://$ENGINE_SOCK
    export DOCKER_CONFIG=$ENGINE_DIR/cli      # private: holds cli-plugins/docker-compose
    ENGINE_CGROUP=imslab-engine-${ENGINE_DIR##*/}   # its containers' cgroups, one parent per engine
    ENGINE_NETNS=${2:-}                       # run dockerd inside this network namespace
}

dk() { "$ENGINE_DOCKER" "$@"; }

engine_apt() {
    local missing=() p
    for p in "${ENGINE_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
}

# apt_mirror: the Debian archive URI this machine's apt uses (deb822 .sources or sources.list).
apt_mirror() {
    local f uri="" etc=${IMSLAB_APT_ETC:-/etc/apt}
    for f in "$etc"/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
        [ -n "$uri" ] && break
    done
    if [ -z "$uri" ] && [ -f "$etc/sources.list" ]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' \
            "$etc/sources.list")
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

host_suite() { . /etc/os-release && echo "${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}"; }

# compose_plugin: `docker compose` (v2) for the private client. Debian 12 has only compose 1.29,
# which rejects the top-level `name:`; Debian 13's docker-compose package is a static Go binary,
# fetched with a private apt state (the host's apt configuration is not changed) and unpacked.
compose_plugin() {
    local plugins=$DOCKER_CONFIG/cli-plugins d
    mkdir -p "$plugins"
    for d in /usr/libexec/docker/cli-plugins /usr/lib/docker/cli-plugins; do
        if [ -x "$d/docker-compose" ]; then ln -sf "$d/docker-compose" "$plugins/docker-compose"; fi
    done
    if [ -x "$plugins/docker-compose" ] && dk compose version >/dev/null 2>&1; then return 0; fi
    local cached
    cached=$(ls "$ENGINE_CACHE"/compose/docker-compose_2.*.deb 2>/dev/null | tail -1 || true)
    if [ -z "$cached" ]; then
        local apt=$ENGINE_CACHE/compose/apt mirror
        mirror=$(apt_mirror)
        mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" \
            > "$apt/sources.list"
        local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
            -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Acquire::Languages=none
            -o APT::Get::List-Cleanup=false -o APT::Sandbox::User=root)
        log "fetching compose v2 (Debian 13 docker-compose) from $mirror"
        apt-get "${opts[@]}" update -qq
        (cd "$ENGINE_CACHE/compose" && apt-get "${opts[@]}" download -qq docker-compose)
        rm -rf "$apt"
        cached=$(ls "$ENGINE_CACHE"/compose/docker-compose_2.*.deb | tail -1)
    fi
    local x=$DOCKER_CONFIG/compose-deb
    rm -rf "$x" && dpkg-deb -x "$cached" "$x"
    ln -sf "$x/usr/libexec/docker/cli-plugins/docker-compose" "$plugins/docker-compose"
    dk compose version >/dev/null
}

engine_running() { [ -S "$ENGINE_SOCK" ] && dk version >/dev/null 2>&1; }

engine_start() {
    [ "$(id -u)" -eq 0 ] || { log "a Docker engine needs root"; return 1; }
    [ -x "$ENGINE_DOCKERD" ] || { log "no $ENGINE_DOCKERD (apt-get install docker.io)"; return 1; }
    if engine_running; then return 0; fi
    mkdir -p "$ENGINE_DATA" "$ENGINE_EXEC" && chmod 0700 "$ENGINE_DIR"
    # not /etc/docker/daemon.json; and the daemon's identity key not in /etc/docker/key.json
    # (a config-file-only option in dockerd 20.10)
    printf '{"deprecated-key-path": "%s"}\n' "$ENGINE_DIR/key.json" > "$ENGINE_DIR/daemon.json"
    log "starting a private dockerd in $ENGINE_DIR"
    # setsid: its own process group, so an interrupted terminal does not kill it half-way; the
    # pidfile is how engine_stop finds it.
    local in_ns=()
    # nsenter, not `ip netns exec`: that also remounts /sys, hiding the cgroup hierarchies
    [ -n "${ENGINE_NETNS:-}" ] && in_ns=(nsenter "--net=/run/netns/$ENGINE_NETNS")
    setsid "${in_ns[@]}" "$ENGINE_DOCKERD" --config-file "$ENGINE_DIR/daemon.json" \
        --data-root "$ENGINE_DATA" --exec-root "$ENGINE_EXEC" --pidfile "$ENGINE_PIDFILE" \
        --host "unix://$ENGINE_SOCK" --iptables=false --ip-forward=false --ip-masq=false \
        --bridge=none --userland-proxy=false --cgroup-parent "$ENGINE_CGROUP" \
        --exec-opt native.cgroupdriver=cgroupfs --log-level warn \
        >"$ENGINE_DIR/dockerd.log" 2>&1 </dev/null &
    local i
    for i in $(seq 1 60); do
        if engine_running; then return 0; fi
        sleep 0.5
    done
    log "dockerd did not come up:"; tail -20 "$ENGINE_DIR/dockerd.log" >&2
    return 1
}

# _pids_under DIR: engine processes (dockerd, containerd, shims, runc) whose command line names DIR.
_pids_under() {
    local p
    for p in /proc/[0-9]*; do
        case "$(cat "$p/comm" 2>/dev/null)" in
            dockerd|containerd|containerd-shim*|runc) ;;
            *) continue ;;
        esac
        tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -qF -- "$1" && echo "${p#/proc/}"
    done
    return 0
}

engine_stop() {
    [ -n "${ENGINE_DIR:-}" ] && [ -d "$ENGINE_DIR" ] || return 0
    local pid="" i
    [ -f "$ENGINE_PIDFILE" ] && pid=$(cat "$ENGINE_PIDFILE" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "stopping dockerd ($pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    # its containerd and any shim (only ever ours: they name our directory), by pid
    for pid in $(_pids_under "$ENGINE_DIR"); do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.5
    for pid in $(_pids_under "$ENGINE_DIR"); do
        kill -KILL "$pid" 2>/dev/null || true
    done
    # mounts left under the engine (the nsfs of its network namespace, overlay layers), deepest first
    local m
    awk -v d="$ENGINE_DIR" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    # cgroups of its containers (cgroupfs driver, one parent of ours)
    local c
    for c in /sys/fs/cgroup/*/"$ENGINE_CGROUP"; do
        [ -d "$c" ] || continue
        find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    rm -f "$ENGINE_SOCK" "$ENGINE_PIDFILE"
    # directories dockerd and containerd create at fixed places whatever the roots (plugin
    # discovery, shim sockets): removed when empty and absent before (ENGINE_FIXED_BEFORE)
    local d
    for d in /run/docker/plugins /run/docker /run/containerd/s /run/containerd; do
        grep -qx "path $d" <<<"${ENGINE_FIXED_BEFORE:-}" || rmdir "$d" 2>/dev/null || true
    done
}

fixed_paths() {  # the fixed paths above that exist now, one "path P" a line
    local d
    for d in /etc/docker/key.json /run/docker/plugins /run/docker /run/containerd/s /run/containerd; do
        [ -e "$d" ] && echo "path $d"
    done
    return 0
}

# engine_remove_bridges BEFORE: delete bridges (br-<id> of compose networks) and veths that the
# engine created and did not remove (a killed run); BEFORE is host_state's output from the start.
engine_remove_bridges() {
    local l
    for l in $(ip -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' |
        grep -E '^(br-[0-9a-f]{12}|veth[0-9a-f]{7}|docker0)$' || true); do
        grep -qx "link $l" <<<"$1" || ip link delete "$l" 2>/dev/null || true
    done
}

# host_state: what a Docker engine can change on the host, one fact a line (compared before and
# after a run): network links, forwarding, the firewall, bridge netfilter, mounts of engines,
# engine processes, top-level cgroups.
host_state() {
    ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print "link " $2 }' | sort
    echo "ipv4 forward $(cat /proc/sys/net/ipv4/ip_forward)"
    echo "ipv6 forwarding $(cat /proc/sys/net/ipv6/conf/all/forwarding 2>/dev/null || echo -)"
    local f
    for f in /proc/sys/net/bridge/bridge-nf-call-*; do
        [ -f "$f" ] && echo "sysctl ${f##*/} $(cat "$f")"
    done
    local t
    for t in iptables-save ip6tables-save; do
        command -v "$t" >/dev/null || continue
        "$t" 2>/dev/null | sed -E '/^#/d; s/ \[[0-9]+:[0-9]+\]$//' | sed "s/^/$t /"
    done
    # (named namespaces under /run/netns are `ip netns`'s, not an engine's: other tests add them)
    awk '($9 == "nsfs" && $5 !~ /^\/run\/netns\//) || $5 ~ /docker|containerd|imslab-(engine|ci|2h)/ {
        print "mount " $5 " " $9 }' /proc/self/mountinfo | sort
    fixed_paths
    local p
    for p in /proc/[0-9]*; do
        case "$(cat "$p/comm" 2>/dev/null)" in
            dockerd|containerd|containerd-shim*|docker-proxy|runc)
                echo "process $(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)" ;;
        esac
    done | sort
    for f in /sys/fs/cgroup/*/; do
        find "$f" -mindepth 1 -maxdepth 1 -type d -printf "cgroup %p\n" 2>/dev/null || true
    done | sort
}

# base_image TAG: a Debian image for the Dockerfile's BASE (python3 + pip, like the official
# python:3.11-slim-bookworm) from the host's apt mirror, imported from a cached rootfs tarball.
base_image() {
    local tag=$1
    if dk image inspect "$tag" >/dev/null 2>&1; then return 0; fi
    local mirror suite key tar
    mirror=$(apt_mirror)
    suite=$(host_suite)
    # the host's extra CAs go into the image (pip behind an intercepting egress proxy needs them)
    key=$( { echo "$mirror $suite ${BASE_PACKAGES[*]} $(dpkg-query -W -f='${Version}' debootstrap)"
             cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; } | sha256sum | cut -c1-16)
    tar=$ENGINE_CACHE/base-$suite-$key.tar
    if [ -f "$tar" ] && [ -n "$(find "$tar" -mtime -"$BASE_MAX_AGE_DAYS")" ]; then
        log "base image from the cache ($tar)"
    else
        local root
        root=$(mktemp -d "${TMPDIR:-/tmp}/imslab-rootfs.XXXXXX")
        log "debootstrap $suite from $mirror (about a minute)"
        if ! debootstrap --variant=minbase --include="$(IFS=,; echo "${BASE_PACKAGES[*]}")" \
                "$suite" "$root" "$mirror" > "$root.log" 2>&1; then
            tail -20 "$root.log" >&2; rm -rf "$root" "$root.log"; return 1
        fi
        rm -f "$root.log"
        if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
            cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
            chroot "$root" update-ca-certificates >/dev/null 2>&1
        fi
        # as the official python images: pip may install into the system interpreter
        rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
        rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
        mkdir -p "$ENGINE_CACHE" && chmod 0700 "$ENGINE_CACHE"
        rm -f "$ENGINE_CACHE"/base-"$suite"-*.tar
        tar -C "$root" --numeric-owner -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
        rm -rf "$root"
    fi
    dk import --change 'CMD ["python3"]' "$tar" "$tag" >/dev/null
}

project_image() {  # ROOT BASE_TAG: the project's image (imslab:latest) from its Dockerfile
    log "building imslab:latest"
    dk build -q --network=host --build-arg "BASE=$2" -t imslab:latest "$1" >/dev/null
}

# lab_up: `compose up` (a function `compose` set by the caller) and wait until every service
# printed its "ready" line (60 s at most).
lab_up() {
    # dockerd runs with --ip-forward=false: the containers share one bridge and need no forwarding,
    # so its "IPv4 forwarding is disabled" warning does not apply
    compose up -d --no-build 2>&1 | grep -v "IPv4 forwarding is disabled" >&2 || true
    local services logs waiting s i
    services=$(compose config --services)
    for i in $(seq 1 120); do
        logs=$(compose logs --no-color 2>/dev/null | sed 's/\x1b\[[0-9;]*[A-Za-z]//g')
        waiting=""
        for s in $services; do
            grep -Eq "^$s(-[0-9]+)? +\| .*ready" <<<"$logs" || waiting+=" $s"
        done
        [ -z "$waiting" ] && break
        [ "$i" -eq 120 ] && { log "not ready after 60 s:$waiting"; return 1; }
        sleep 0.5
    done
    log "$(wc -w <<<"$services") services up and ready"
}
