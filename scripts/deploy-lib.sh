# Helpers of the deployment tests (scripts/test-slurm.sh,
# scripts/test-prometheus.sh); sourced, not run.

# ensure_packages PKG... : apt-get install what is missing (Debian), as root,
# without starting any service: the packages' init scripts would start
# munged, node_exporter or prometheus listening on every address. A
# policy-rc.d that refuses starts is put in place for the install when the
# machine has none (Debian's container images ship one), then removed.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    if [[ $EUID -ne 0 ]]; then
        echo "$0: needs root to install ${missing[*]} (apt-get)" >&2
        return 2
    fi
    local guard=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        guard=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\n# written by kiln %s for the install; refuses service starts\nexit 101\n' "$0" >"$guard"
        chmod 755 "$guard"
    fi
    local rc=0
    if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
        apt-get update -q >/dev/null || rc=$?
    fi
    if ((rc == 0)); then
        echo "$0: apt-get install ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null || rc=$?
    fi
    [[ -n "$guard" ]] && rm -f "$guard"
    if ((rc != 0)); then
        echo "$0: apt-get install ${missing[*]} failed ($rc)" >&2
        return 2
    fi
}

# kiln_binary REPO: the kiln binary the tests run: $KILN when set, else the
# repository's debug build (built when missing; cargo build --release and
# KILN=target/release/kiln for a release build).
kiln_binary() {
    local repo="$1"
    if [[ -n "${KILN:-}" ]]; then
        if [[ ! -x "$KILN" ]]; then
            echo "$0: KILN=$KILN is not an executable" >&2
            return 2
        fi
        printf '%s\n' "$(cd "$(dirname "$KILN")" && pwd)/$(basename "$KILN")"
        return 0
    fi
    if [[ ! -x "$repo/target/debug/kiln" ]]; then
        echo "$0: building kiln (cargo build)" >&2
        (cd "$repo" && cargo build --bin kiln >&2) || return 2
    fi
    printf '%s\n' "$repo/target/debug/kiln"
}

# free_port: a TCP port free on 127.0.0.1 now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# kiln_has KILN SUBCOMMAND FLAG: true when `kiln SUBCOMMAND --help` lists FLAG.
kiln_has() {
    "$1" "$2" --help 2>/dev/null | grep -q -- "$3"
}
