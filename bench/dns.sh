#!/usr/bin/env bash
# DNS benchmark: cnet's embedded resolver against aardvark-dns (Podman's) and Docker's
# embedded resolver, each answering a container's name to another container on the
# same user-defined network. One command, as root:
#
#     bench/dns.sh
#
# writes bench/results/dns.json and the DNS table of BENCHMARKS.md.
#
# Safety: every resolver, bridge, veth and container lives in throwaway namespaces
# (`unshare --net --mount --pid --fork --mount-proc`, as tests/src/lib.rs does), one per
# system. Killing a namespace's init takes everything inside with it. The host's
# interfaces, routes and firewall are never touched; queries only go to addresses inside
# those namespaces (127.0.0.11 in a container, or a bridge address of our own).
#
# Knobs (environment):
#   ROUNDS=3         rounds; each round runs every system once, in a rotated order
#   QPS_SECONDS=5    length of a throughput run
#   LAT_SECONDS=3    length of a latency run
#   LAT_QPS=2000     the fixed, light rate of a latency run (far below every system's
#                    capacity), so every query is timed on an otherwise idle resolver
#   CLIENTS=4        dnsperf -c (UDP sockets) for throughput runs
#   OUTSTANDING=100  dnsperf -q (queries in flight) for throughput runs
#   SYSTEMS="cnet aardvark docker"   which systems to run
#   QUIET_BUSY=15    before each dnsperf run, wait (up to QUIET_WAIT=20 s) until the
#                    machine was less than this % busy for a second: other work on a
#                    shared machine (compilers) would otherwise land in the figures.
#                    What was seen is recorded either way, and flagged in the report.
#   RETRIES=2        a dnsperf run during which other work took 0.15 cores or more
#                    is run again, up to this many times; the least disturbed one counts
#   RESULTS=bench/results/dns.json   where the JSON goes
#   MARKDOWN=BENCHMARKS.md           whose DNS table is rewritten ("" for none)
#   CNET_BIN_DIR=... use these cnet binaries instead of building them
#   CNET_PROFILE=release|debug       which profile to build (default release, debug if
#                                    the release build fails)
set -euo pipefail

ROUNDS=${ROUNDS:-3}
QPS_SECONDS=${QPS_SECONDS:-5}
LAT_SECONDS=${LAT_SECONDS:-3}
LAT_QPS=${LAT_QPS:-2000}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-100}
SYSTEMS=${SYSTEMS:-"cnet aardvark docker"}
QUIET_BUSY=${QUIET_BUSY:-15}
QUIET_WAIT=${QUIET_WAIT:-20}
RETRIES=${RETRIES:-2}

REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$REPO/bench
RESULTS=${RESULTS:-$BENCH/results/dns.json}
MARKDOWN=${MARKDOWN-$REPO/BENCHMARKS.md}
AARDVARK=/usr/lib/podman/aardvark-dns   # Debian installs it off PATH, for netavark

log() { printf '[dns-bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

[[ $(id -u) == 0 ]] || die "run as root (namespaces, bridges, veths)"

# Short path on purpose: dockerd puts unix sockets under --exec-root (108-byte limit).
WORK=$(mktemp -d /tmp/dnsb.XXXXXX)
RAW=$WORK/raw
mkdir -p "$RAW"
# A cgroup name of our own: runc creates cgroups on the (shared) cgroup filesystem, and
# killing the namespace does not remove them, so cleanup removes exactly these.
CGROUP_PARENT=cnet-dnsbench-$$
declare -A NS=()   # system -> host pid of its namespace's init

# ---------------------------------------------------------------------------- cleanup
cleanup() {
    local status=$?
    set +e
    log "cleaning up"
    if [[ -n ${NS[docker]:-} ]]; then
        # Stop containers and dockerd politely, so runc removes its cgroups itself.
        docker_cli rm -f c1 c2 >/dev/null 2>&1
        nsx "${NS[docker]}" 20 sh -c 'kill $(cat '"$WORK"'/docker/docker.pid) 2>/dev/null' >/dev/null 2>&1
        for _ in $(seq 50); do pgrep -f "$WORK/docker/docker.pid" >/dev/null || break; sleep 0.2; done
    fi
    if [[ -n ${NS[cnet]:-} ]]; then
        cnet_cli down >/dev/null 2>&1
    fi
    for system in "${!NS[@]}"; do
        kill -KILL "${NS[$system]}" 2>/dev/null
    done
    # Wait for each namespace's init to be gone (its network and mount namespaces go
    # with the last process inside).
    for system in "${!NS[@]}"; do
        for _ in $(seq 100); do [[ -e /proc/${NS[$system]} ]] || break; sleep 0.1; done
    done
    sleep 0.5
    find /sys/fs/cgroup -maxdepth 6 -depth -type d -path "*/$CGROUP_PARENT*" \
        -exec rmdir {} \; 2>/dev/null
    rm -rf "$WORK"
    # What the brief asks to check: nothing of ours is left on the host.
    log "left on the host: netns [$(ip netns list | tr '\n' ' ')]," \
        "veths $(ip -o link show type veth | wc -l)," \
        "dockerd $(pgrep -xc dockerd || true)," \
        "cgroups $(find /sys/fs/cgroup -maxdepth 6 -type d -name "$CGROUP_PARENT*" | wc -l)"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------ the systems
# Each setup_<system> runs in its own `set -e` subshell and leaves, in
# $WORK/<system>/client: NETNS (the client's network namespace, as a path inside the
# system's mount namespace), SERVER (the address dnsperf queries) and EXPECT (c2's
# address, checked with dig before measuring).

cnet_cli() {
    nsx "${NS[cnet]}" 120 env CNET_RUNTIME_DIR="$WORK/cnet/run" CNET_STATE_DIR="$WORK/cnet/state" \
        CNET_DNS__RESOLV_CONF="$WORK/cnet/upstream-resolv.conf" "$BIN/cnet" "$@"
}

# cnet: the whole cluster (`cnet up -d`) in one namespace that plays the host; two
# containers on a user-defined network; the client is c1's namespace, the server the
# dns service's listener at 127.0.0.11 in it.
setup_cnet() {
    mkdir -p "$WORK/cnet"
    # The resolver forwards unknown names to this file's servers, never to the host's
    # (none are queried here anyway: only container names).
    echo "nameserver 127.0.0.1" >"$WORK/cnet/upstream-resolv.conf"
    nsx "${NS[cnet]}" 10 ip link set lo up
    cnet_cli up -d
    cnet_cli network create --subnet 10.201.0.0/24 bench
    cnet_cli run -d --name c1 --network bench
    cnet_cli run -d --name c2 --network bench
    local pid expect
    pid=$(cnet_cli inspect c1 | jq -r '.[0].State.Pid')
    expect=$(cnet_cli inspect c2 | jq -r '.[0].NetworkSettings.Networks.bench.IPAddress')
    printf 'NETNS=/proc/%s/ns/net\nSERVER=127.0.0.11\nEXPECT=%s\n' "$pid" "$expect" \
        >"$WORK/cnet/client"
    "$BIN/cnet" --version >"$WORK/cnet/version"
}

# aardvark-dns: run directly, as netavark would start it, with a config dir whose file
# `bench` (the network name) lists the listening address (the bridge's gateway) and one
# line per container: id, IPv4 list, IPv6 list (empty), names. It answers only clients
# whose source address is a container of the network, so the client is c1's namespace,
# attached to the bridge by a veth like a Podman container.
setup_aardvark() {
    local ns=${NS[aardvark]} dir=$WORK/aardvark
    mkdir -p "$dir/config"
    # `ip netns add` keeps its mounts in /run/netns: a private tmpfs keeps them off the host.
    nsx "$ns" 10 mount -t tmpfs tmpfs /run
    nsx "$ns" 30 sh -ec '
        ip link set lo up
        ip link add br0 type bridge
        ip addr add 10.202.0.1/24 dev br0
        ip link set br0 up
        for i in 1 2; do
            ip netns add c$i
            ip link add veth$i type veth peer name eth0 netns c$i
            ip link set veth$i master br0 up
            ip -n c$i addr add 10.202.0.$((i + 1))/24 dev eth0
            ip -n c$i link set eth0 up
            ip -n c$i link set lo up
        done'
    {
        echo "10.202.0.1"
        echo "$(printf 'c1%.0s' {1..32}) 10.202.0.2  c1"
        echo "$(printf 'c2%.0s' {1..32}) 10.202.0.3  c2"
    } >"$dir/config/bench"
    nsd "$ns" "$dir/aardvark.log" "$AARDVARK" --config "$dir/config" -p 53 run
    wait_for 10 nsx "$ns" 5 sh -c "ss -lun | grep -q '10.202.0.1:53 '"
    printf 'NETNS=/run/netns/c1\nSERVER=10.202.0.1\nEXPECT=10.202.0.3\n' >"$dir/client"
    "$AARDVARK" --version >"$dir/version"
}

docker_cli() {
    nsx "${NS[docker]}" 120 docker -H "unix://$WORK/docker/docker.sock" "$@"
}

# Docker: dockerd (and the containerd it manages) inside the namespace, with every
# directory its own; iptables on, because the embedded DNS redirects 127.0.0.11:53 to
# its real port with iptables rules in each container's namespace (and the rules dockerd
# writes for its bridges land in this namespace, not the host's). No registry can be
# reached, so the image is a busybox-static rootfs made here and `docker import`ed.
setup_docker() {
    local ns=${NS[docker]} dir=$WORK/docker
    mkdir -p "$dir/rootfs/bin"
    nsx "$ns" 10 mount -t tmpfs tmpfs /run   # containerd/runc defaults under /run stay private
    nsx "$ns" 10 ip link set lo up
    nsd "$ns" "$dir/dockerd.log" dockerd --data-root "$dir/data" --exec-root "$dir/exec" \
        --pidfile "$dir/docker.pid" -H "unix://$dir/docker.sock" --storage-driver vfs \
        --cgroup-parent "$CGROUP_PARENT" --log-level warn
    wait_for 60 docker_cli version || { tail -20 "$dir/dockerd.log"; return 1; }
    cp /bin/busybox "$dir/rootfs/bin/busybox"
    for applet in sh sleep; do ln -s busybox "$dir/rootfs/bin/$applet"; done
    tar -C "$dir/rootfs" -c . | docker_cli import - cnet-bench/busybox >/dev/null
    docker_cli network create --subnet 10.203.0.0/24 bench >/dev/null
    docker_cli run -d --name c1 --network bench cnet-bench/busybox sleep 3600 >/dev/null
    docker_cli run -d --name c2 --network bench cnet-bench/busybox sleep 3600 >/dev/null
    local pid expect
    pid=$(docker_cli inspect -f '{{.State.Pid}}' c1)
    expect=$(docker_cli inspect -f '{{.NetworkSettings.Networks.bench.IPAddress}}' c2)
    printf 'NETNS=/proc/%s/ns/net\nSERVER=127.0.0.11\nEXPECT=%s\n' "$pid" "$expect" >"$dir/client"
    docker_cli version --format 'Docker Engine {{.Server.Version}}' >"$dir/version"
}

# The host pid of the process that answers the queries, found by its command name among
# the processes of the system's pid namespace (other clusters may run the same binary).
declare -A RESOLVER=([cnet]=cnet-dns [aardvark]=aardvark-dns [docker]=dockerd)
resolver_pid() {
    local system=$1 want pid
    want=$(readlink "/proc/${NS[$system]}/ns/pid")
    for pid in $(pgrep -x "${RESOLVER[$system]}"); do
        [[ $(readlink "/proc/$pid/ns/pid") == "$want" ]] && { echo "$pid"; return; }
    done
}

# CPU accounting around a throughput run, to tell who was the bottleneck: the resolver's
# own CPU time (all its threads; for Docker, all of dockerd, whose embedded DNS is a part
# of it) and the whole machine's busy time (the client, and anything else running).
cpu_snapshot() {
    local pid=$1
    [[ -n $pid && -e /proc/$pid/stat ]] && awk '{print "resolver_ticks=" $14 + $15}' "/proc/$pid/stat"
    awk '/^cpu / {busy = $2 + $3 + $4 + $7 + $8 + $9; print "machine_busy_ticks=" busy;
                  print "machine_total_ticks=" busy + $5 + $6}' /proc/stat
    echo "loadavg=$(cut -d' ' -f1 /proc/loadavg)"
}



# other_cores CPU_FILE QPS_FILE: the cores' worth of CPU that went to neither the
# resolver nor the client during a throughput run (other work on the machine).
other_cores() {
    awk -v hz="$(getconf CLK_TCK)" -v cores="$(nproc)" '
        FNR == NR { split($0, kv, "="); f[kv[1]] = kv[2]; next }
        /^[0-9]+m[0-9.]+s [0-9]+m[0-9.]+s$/ {
            gsub(/s/, ""); split($1, u, "m"); split($2, k, "m")
            client = u[1] * 60 + u[2] + k[1] * 60 + k[2]
        }
        END {
            busy = (f["after_machine_busy_ticks"] - f["before_machine_busy_ticks"]) / hz
            wall = (f["after_machine_total_ticks"] - f["before_machine_total_ticks"]) / hz / cores
            resolver = (f["after_resolver_ticks"] - f["before_resolver_ticks"]) / hz
            other = wall > 0 ? (busy - resolver - client) / wall : 0
            printf "%.2f", other < 0 ? 0 : other
        }' "$1" "$2"
}

# client SYSTEM SECONDS CMD...: run CMD in the system's client namespace.
client() {
    local system=$1 seconds=$2
    shift 2
    # shellcheck disable=SC1090
    source "$WORK/$system/client"
    nsx "${NS[$system]}" "$seconds" nsenter --net="$NETNS" "$@"
}

# --------------------------------------------------------------------------- measure
# Throughput: dnsperf as fast as it can (CLIENTS sockets, OUTSTANDING queries in flight)
# for QPS_SECONDS. Latency: dnsperf at a fixed light rate (-Q LAT_QPS) for LAT_SECONDS,
# -v printing each answer's round-trip time, from which dns_report.py takes p50/p99
# (dnsperf 2.10 prints no percentiles itself). Not -q 1: dnsperf's sender then naps
# between queries and times only a few hundred queries a second, too few for a p99.
measure() {
    local system=$1 round=$2
    source "$WORK/$system/client"
    log "round $round: $system"
    run_checked "$system" "$round" qps "$QPS_SECONDS" \
        -l "$QPS_SECONDS" -c "$CLIENTS" -q "$OUTSTANDING" -t 2
    run_checked "$system" "$round" lat "$LAT_SECONDS" \
        -l "$LAT_SECONDS" -c 1 -q 20 -Q "$LAT_QPS" -t 2 -v
}

# run_checked SYSTEM ROUND KIND SECONDS DNSPERF_ARGS...: one dnsperf run into
# $RAW/SYSTEM.ROUND.KIND (and .KIND.cpu: the CPU accounting around it). A run during
# which other work took 0.15 cores or more is run again, up to RETRIES times; the least
# disturbed attempt is kept.
run_checked() {
    local system=$1 round=$2 kind=$3 seconds=$4
    shift 4
    local pid attempt other best=""
    pid=$(resolver_pid "$system")
    for ((attempt = 1; attempt <= RETRIES + 1; attempt++)); do
        local cpu=$WORK/attempt.cpu out=$WORK/attempt.out
        echo "busy_before_pct=$(wait_quiet)" >"$cpu"
        cpu_snapshot "$pid" | sed 's/^/before_/' >>"$cpu"
        # `times` after dnsperf: the client's own CPU time, so that what neither client
        # nor resolver used (other work on the machine) can be told apart.
        client "$system" $((seconds + 30)) sh -c 'dnsperf "$@"; s=$?; times; exit $s' sh \
            -s "$SERVER" -d "$WORK/queries" "$@" >"$out" 2>&1
        cpu_snapshot "$pid" | sed 's/^/after_/' >>"$cpu"
        other=$(other_cores "$cpu" "$out")
        echo "attempt=$attempt" >>"$cpu"
        if [[ -z $best ]] || awk -v a="$other" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$other
            cp "$cpu" "$RAW/$system.$round.$kind.cpu"
            cp "$out" "$RAW/$system.$round.$kind"
        fi
        awk -v a="$other" 'BEGIN { exit !(a >= 0.15) }' || break
        if ((attempt <= RETRIES)); then
            log "  $kind: other work took $other cores during the run: again"
        fi
    done
}

# ------------------------------------------------------------------------------- main
install_packages dnsperf aardvark-dns docker.io busybox-static iproute2 iptables bind9-dnsutils util-linux procps python3 jq
for tool in dnsperf dig jq nsenter unshare; do
    command -v "$tool" >/dev/null || die "$tool is missing and could not be installed"
done
build_cnet
log "cnet binaries: $BIN ($PROFILE)"

echo "c2 A" >"$WORK/queries"   # every query: c2's address, asked from c1
ok_systems=()
for system in $SYSTEMS; do
    NS[$system]=$(new_ns)
    log "setting up $system (namespace init pid ${NS[$system]})"
    mkdir -p "$WORK/$system"
    # A failed setup skips the system and keeps its reason for the report.
    (set -e; "setup_$system") >"$WORK/$system/setup.log" 2>&1 &
    if ! wait $!; then
        log "$system: setup failed; see the report"
        tail -15 "$WORK/$system/setup.log" >"$RAW/$system.error"
        cat "$RAW/$system.error" >&2
        continue
    fi
    source "$WORK/$system/client"
    answer=$(client "$system" 10 dig +short +tries=1 +time=2 "@$SERVER" c2 || true)
    if [[ $answer != "$EXPECT" ]]; then
        echo "dig @$SERVER c2 answered '$answer', expected '$EXPECT'" >"$RAW/$system.error"
        log "$system: $(cat "$RAW/$system.error")"
        continue
    fi
    cp "$WORK/$system/version" "$RAW/$system.version"
    # Warm-up (ARP, caches, lazy init); not recorded.
    client "$system" 30 dnsperf -s "$SERVER" -d "$WORK/queries" -l 1 -c "$CLIENTS" \
        -q "$OUTSTANDING" >/dev/null 2>&1 || true
    ok_systems+=("$system")
done
((${#ok_systems[@]})) || die "no system could be set up"

# Interleaved rounds, the order rotated each round, so that drift of the machine
# (other load, thermal, caches) does not favour one system.
for ((round = 1; round <= ROUNDS; round++)); do
    count=${#ok_systems[@]}
    for ((i = 0; i < count; i++)); do
        measure "${ok_systems[$(((i + round - 1) % count))]}" "$round"
    done
done

# Facts about the run, for the report.
{
    echo "kernel=$(uname -r)"
    echo "cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "cores=$(nproc)"
    echo "clock_ticks=$(getconf CLK_TCK)"
    echo "memory_gib=$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "dnsperf=$(dnsperf -h 2>&1 | sed -n 's/^Version //p')"
    echo "cnet_profile=$PROFILE"
    # "-dirty": built from a work tree with uncommitted changes.
    echo "cnet_commit=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
    echo "rounds=$ROUNDS"
    echo "qps_seconds=$QPS_SECONDS"
    echo "lat_seconds=$LAT_SECONDS"
    echo "lat_qps=$LAT_QPS"
    echo "quiet_busy=$QUIET_BUSY"
    echo "quiet_wait=$QUIET_WAIT"
    echo "retries=$RETRIES"
    echo "clients=$CLIENTS"
    echo "outstanding=$OUTSTANDING"
    echo "systems=$SYSTEMS"
} >"$RAW/machine"

mkdir -p "$(dirname "$RESULTS")"
python3 "$BENCH/dns_report.py" "$RAW" "$RESULTS" "$MARKDOWN"
log "wrote $RESULTS${MARKDOWN:+ and $MARKDOWN}"
