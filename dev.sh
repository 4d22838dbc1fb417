#!/usr/bin/env bash
# imslab set-up and entry points for a fresh Debian/Ubuntu machine with Python 3.11+.
#   ./dev.sh demo    installs everything, then runs `imslab demo` on the built-in lab
#   ./dev.sh test    installs everything, then runs ruff, mypy and the whole test suite
#   ./dev.sh setup   installs only (apt peers + .venv)
#   ./dev.sh compose up|call|li|lemf|down|...   the lab as containers on a private Docker engine
#                    (root; deploy/compose.sh); `./dev.sh test` also runs it end to end as root
# Set IMSLAB_NO_APT=1 to skip the apt step (e.g. inside a container that already has the peers).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="${IMSLAB_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

# External peers the tests and demo use: SIPp, tshark, baresip, GStreamer's MIKEY parser,
# iproute2 for network namespaces, sox for audio checks.
# sngrep reads the LEMF's call.pcap; chromium renders matrix.html in the report test.
APT_PACKAGES=(sip-tester tshark sngrep baresip iproute2 python3-venv python3-gi
              gir1.2-gst-plugins-base-1.0 gstreamer1.0-plugins-base sox ca-certificates chromium redis-server)

apt_setup() {
    [ "${IMSLAB_NO_APT:-0}" = 1 ] && return 0
    command -v apt-get >/dev/null || { echo "dev.sh: no apt-get; install ${APT_PACKAGES[*]} by hand" >&2; return 0; }
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "dev.sh: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    # tshark asks whether non-root users may capture: answer no, non-interactively.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Interop peers from Debian (deploy helper): Kamailio as the lab's Internet proxy
# (tests/peers/test_kamailio.py), rtpengine as the media relay (tests/peers/test_rtpengine.py).
# The compose stage installs docker.io and debootstrap itself.
APT_PACKAGES+=(kamailio rtpengine-daemon)

venv_setup() {
    local stamp="$VENV/.imslab-stamp"
    local want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade "pip>=25.1"
    # --group needs pip >= 25.1 (PEP 735 dependency groups).
    "$VENV/bin/python" -m pip install -q -e . --group test
    echo "$want" > "$stamp"
}

run_tests() {
    export PATH="$VENV/bin:$PATH"
    echo "== ruff" && ruff check . && ruff format --check .
    echo "== mypy" && mypy
    echo "== pytest"
    # -bb: bytes/str mix-ups are errors (STYLE.md §8).
    python -bb -m pytest "$@"
}

cmd="${1:-help}"
shift || true
case "$cmd" in
    setup) apt_setup; venv_setup ;;
    demo)  apt_setup; venv_setup; exec "$VENV/bin/imslab" demo "$@" ;;
    test)  apt_setup; venv_setup; run_tests "$@"
           # the CI stages on real container engines (root only; the whole suite only; opt out
           # with IMSLAB_COMPOSE_CI=0): the compose lab (deploy/compose-ci.sh), then the
           # two-host deployment (deploy/two-host-ci.sh) with the image the first one built
           if [ $# -eq 0 ] && [ "${IMSLAB_COMPOSE_CI:-1}" != 0 ] && [ "$(id -u)" -eq 0 ]; then
               image=$(mktemp /var/tmp/imslab-image.XXXXXX.tar)
               trap 'rm -f "$image"' EXIT
               echo "== compose on a real engine" && IMSLAB_SAVE_IMAGE=$image deploy/compose-ci.sh
               echo "== two hosts, two engines" && IMSLAB_IMAGE_TAR=$image deploy/two-host-ci.sh
           fi ;;
    compose) exec deploy/compose.sh "$@" ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
esac
