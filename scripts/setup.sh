#!/usr/bin/env bash
# Install everything the merchant app and its tests need, on Debian 12 x86-64:
# Debian packages, the Python virtual environment (.venv) with pinned
# dependencies, anvil and solc-js from npm (tools/node_modules), and Kubo
# built from its Go module (tools/bin/ipfs).
#
# Each step is skipped when its result is already in place, so a second run
# takes seconds. Downloads are cached outside the checkout (pip, npm and Go
# caches, and a Kubo binary per version), so a fresh clone on a machine that
# ran this before sets up quickly too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KUBO_VERSION="v0.43.1"
# Kubo v0.43.1 replaces go-libp2p with a fork commit that the Go module proxy
# does not serve, and `go install pkg@version` rejects replace directives in
# any case. A TODO in its go.mod asks to drop the replace once a go-libp2p
# release requires quic-go >= v0.62.0 and webtransport-go >= v0.13.0. v0.50.0
# is the first that does, so the build requires that release instead.
KUBO_LIBP2P_VERSION="v0.50.0"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/merchant-app"
PYTHON="${PYTHON:-python3.11}"

APT_PACKAGES=(
    # Secret Service for the wallet and its tests
    gnome-keyring dbus dbus-x11 libsecret-1-0
    # a real X display for screenshots and the demo window
    xvfb xauth x11-utils
    # Qt's xcb platform plugin and its libraries
    libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-image0
    libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-xinerama0
    libxcb-xkb1 libxkbcommon0 libxkbcommon-x11-0 libegl1 libgl1 libopengl0
    libfontconfig1 libdbus-1-3 libglib2.0-0 fonts-dejavu-core
    # building Kubo
    git ca-certificates
    # building the store's C module (merchant_app/store/_rowsource.c)
    gcc libc6-dev libsqlite3-dev
)

log() {
    printf '[setup] %s\n' "$*"
}

run_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

install_apt_packages() {
    local missing=()
    local package
    for package in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null \
            | grep -q "install ok installed"; then
            missing+=("$package")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "Debian packages: all present"
        return
    fi
    log "Debian packages: installing ${missing[*]}"
    run_as_root apt-get update -q
    run_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
}

check_command() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "setup: '$1' is missing; $2" >&2
        exit 1
    fi
}

install_python_env() {
    check_command "$PYTHON" "install Python 3.11 or set PYTHON to its path"
    local stamp_file="$ROOT/.venv/.setup-stamp"
    local stamp
    stamp="$(cat "$ROOT/pyproject.toml" "$ROOT/requirements.lock" "$ROOT/setup.py" \
        "$ROOT/merchant_app/store/_rowsource.c" | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
        && "$ROOT/.venv/bin/python" -c "import merchant_app.store._rowsource" 2>/dev/null; then
        log "Python environment: up to date"
        return
    fi
    log "Python environment: installing pinned packages into .venv"
    if [ ! -x "$ROOT/.venv/bin/python" ]; then
        "$PYTHON" -m venv "$ROOT/.venv"
    fi
    "$ROOT/.venv/bin/python" -m pip install -q --upgrade pip setuptools wheel
    "$ROOT/.venv/bin/python" -m pip install -q -c "$ROOT/requirements.lock" \
        -e "$ROOT[dev,bench,bundle]"
    # The C module is optional for the app, but tests and benchmarks expect it.
    if ! "$ROOT/.venv/bin/python" -c "import merchant_app.store._rowsource"; then
        echo "setup: the C module merchant_app/store/_rowsource.c did not build;" \
            "see the pip output above" >&2
        exit 1
    fi
    echo "$stamp" >"$stamp_file"
}

install_node_tools() {
    check_command node "install Node.js 20 or newer"
    check_command npm "install npm"
    local stamp_file="$ROOT/tools/.stamp-npm"
    local stamp
    stamp="$(sha256sum "$ROOT/tools/package-lock.json" | cut -d' ' -f1)"
    if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
        && [ -d "$ROOT/tools/node_modules" ]; then
        log "npm tools (anvil, solc): up to date"
        return
    fi
    log "npm tools (anvil, solc): installing"
    (cd "$ROOT/tools" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$stamp" >"$stamp_file"
}

kubo_is_installed() {
    [ -x "$1" ] && "$1" version 2>/dev/null | grep -q "ipfs version ${KUBO_VERSION#v}$"
}

build_kubo() {
    local output="$1"
    local module_dir build_dir
    check_command go "install Go 1.26 or newer"
    module_dir="$(go mod download -json "github.com/ipfs/kubo@${KUBO_VERSION}" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    if [ -z "$module_dir" ]; then
        echo "setup: could not download the Go module github.com/ipfs/kubo@${KUBO_VERSION}" >&2
        exit 1
    fi
    build_dir="$(mktemp -d)"
    cp -r "$module_dir/." "$build_dir"
    chmod -R u+w "$build_dir"
    (
        cd "$build_dir"
        go mod edit -dropreplace github.com/libp2p/go-libp2p \
            -require "github.com/libp2p/go-libp2p@${KUBO_LIBP2P_VERSION}"
        go build -mod=mod -trimpath -o "$output" ./cmd/ipfs
    )
    rm -rf "$build_dir"
}

install_kubo() {
    local target="$ROOT/tools/bin/ipfs"
    local cached="$CACHE_DIR/kubo-${KUBO_VERSION}-libp2p-${KUBO_LIBP2P_VERSION}/ipfs"
    if kubo_is_installed "$target"; then
        log "Kubo ${KUBO_VERSION}: present"
        return
    fi
    mkdir -p "$ROOT/tools/bin"
    if ! kubo_is_installed "$cached"; then
        log "Kubo ${KUBO_VERSION}: building from its Go module (a few minutes)"
        mkdir -p "$(dirname "$cached")"
        build_kubo "$cached.partial"
        mv "$cached.partial" "$cached"
    fi
    cp "$cached" "$target"
    log "Kubo ${KUBO_VERSION}: installed at tools/bin/ipfs"
}

main() {
    install_apt_packages
    install_python_env
    install_node_tools
    install_kubo
    log "done"
}

main "$@"
