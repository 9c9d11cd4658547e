#!/usr/bin/env bash
# Helpers the benchmark scripts share; sourced after they define REPO, PACKAGES, log
# and die.

# A fresh network + mount + pid namespace held by `sleep infinity`; prints the pid of
# that init (killing it takes everything inside with it).
new_ns() {
    unshare --net --mount --pid --fork --mount-proc --propagation private \
        sleep infinity </dev/null >/dev/null 2>&1 &
    local holder=$! child=""
    for _ in $(seq 100); do
        child=$(cat "/proc/$holder/task/$holder/children" 2>/dev/null | awk '{print $1}')
        [[ -n $child ]] && break
        sleep 0.05
    done
    [[ -n $child ]] || die "unshare did not start"
    echo "$child"
}

# nsx PID SECONDS CMD...: run CMD inside the namespaces of PID, bounded in time.
nsx() {
    local pid=$1 seconds=$2
    shift 2
    nsenter --target "$pid" --net --mount --pid -- timeout --kill-after=5 "$seconds" "$@"
}

# nsd PID LOG CMD...: a daemon inside the namespaces of PID (it dies with them).
nsd() {
    local pid=$1 out=$2
    shift 2
    setsid nsenter --target "$pid" --net --mount --pid -- "$@" </dev/null >"$out" 2>&1 &
    disown $!
}

# Runs "$@" until it succeeds, for at most $1 seconds.
wait_for() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# Installs the missing Debian packages among "$@". The maintainer scripts of docker.io
# and nginx would start their daemons on the real host (docker.io's would rewrite its
# firewall); a policy-rc.d that says no stops that.
install_packages() {
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$package")
    done
    ((${#missing[@]})) || return 0
    log "installing: ${missing[*]}"
    local policy=/usr/sbin/policy-rc.d created=""
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || true
    [[ -n $created ]] && rm -f "$policy"
}

# cnet's service binaries: CNET_BIN_DIR if given, else a release build (debug if that
# fails). Sets BIN and PROFILE.
PACKAGES=(-p cnet-cli -p cnet-gateway -p cnet-ipam -p cnet-bridge -p cnet-nat -p cnet-dns -p cnet-hosts)
build_cnet() {
    if [[ -n ${CNET_BIN_DIR:-} ]]; then
        BIN=$(realpath "$CNET_BIN_DIR") PROFILE="given (CNET_BIN_DIR)"
        return
    fi
    # Only the service packages, never --workspace: others may be compiling on 2 cores.
    if [[ ${CNET_PROFILE:-release} == release ]] &&
        (cd "$REPO" && cargo build --release --bins "${PACKAGES[@]}" >&2); then
        BIN=$REPO/target/release PROFILE=release
    else
        log "release build skipped or failed: building debug"
        (cd "$REPO" && cargo build --bins "${PACKAGES[@]}" >&2)
        BIN=$REPO/target/debug PROFILE=debug
    fi
}

# The machine's busy percentage over the next second (every core, from /proc/stat).
busy_next_second() {
    local a b
    a=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat)
    sleep 1
    b=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat)
    echo "$a $b" | awk '{busy = $3 - $1; idle = $4 - $2; printf "%.0f", 100 * busy / (busy + idle)}'
}

# Waits (at most QUIET_WAIT seconds) until the machine is under QUIET_BUSY % busy;
# prints the last busy % seen. This is a shared machine: runs started on a busy one read
# wrong.
wait_quiet() {
    local busy deadline=$((SECONDS + QUIET_WAIT))
    while :; do
        busy=$(busy_next_second)
        if ((busy < QUIET_BUSY || SECONDS >= deadline)); then
            echo "$busy"
            return
        fi
    done
}
