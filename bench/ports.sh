#!/usr/bin/env bash
# Port-publishing benchmark (issue 5): what a published port costs through cnet's
# in-process proxy (cnet-nat, one tokio task per binding) and through the kernel's DNAT,
# next to Docker's one-process-per-port docker-proxy and to the container reached
# directly. One command, as root:
#
#     bench/ports.sh
#
# writes bench/results/ports.json and the table of the "Port publishing" section of
# BENCHMARKS.md (between the ports-results markers; nothing else in the file is touched).
#
# One cluster (`cnet up -d`) in throwaway namespaces (`unshare --net --mount --pid --fork
# --mount-proc`, as tests/src/lib.rs does) that play the host. One container `web` runs
# `iperf3 -s` and nginx (one worker), publishing 5201 and 80. Every client runs in the
# "host" namespace and reaches the same two servers four ways:
#   direct        the container's address (the limit)
#   cnet          127.0.0.1:<published port>: cnet-nat's proxy (loopback is never DNATed)
#   dnat          10.200.0.1:<published port>, an address of a bridge `hostnic` made here:
#                 the OUTPUT chain's DNAT sends it straight to the container (no proxy)
#   docker-proxy  127.0.0.1:<another port>: Debian's /usr/sbin/docker-proxy, started here
#                 with the arguments dockerd gives it, relaying to the same container port
# Metrics: throughput (iperf3 -P 1), new-connection rate (wrk, one connection per request),
# and memory per published port (cnet-nat's RSS before and after publishing MANY_PORTS
# ports, against DP_PROCS docker-proxy processes).
#
# Safety: the host's interfaces, routes, firewall and sysctls are never touched. The
# cluster's bridges and iptables rules, `hostnic`, every server, proxy and client live in
# the namespaces, and traffic only goes to loopback or to addresses inside them. Killing
# the namespace's init at the end takes everything with it.
#
# Knobs (environment):
#   ROUNDS=5            rounds; each runs every path once, the order rotated each round
#   RUN_SECONDS=3       length of one iperf3 or wrk run
#   WRK_CONNECTIONS=32  wrk -c (connections kept busy; each request opens a new one)
#   MANY_PORTS=1000     ports published at once for the memory figure (one container,
#                       -p 20000-2xxxx:20000-2xxxx)
#   DP_PROCS=50         docker-proxy processes started for the memory figure
#   PATHS="direct cnet dnat docker-proxy"
#   QUIET_BUSY=15       before each run, wait (at most QUIET_WAIT=60 s) until the machine
#                       was under this % busy for a second; what was seen is recorded
#   OTHER_MAX=0.15      a run during which other work (not our namespace, not the client)
#   RETRIES=2           took more cores than this is run again, at most RETRIES times
#   CC=reno             TCP congestion control of the namespaces ("host": leave the
#                       host's default). Reno by default so that "% of direct" measures
#                       the relay's overhead: where the default is BBR without an fq
#                       qdisc, each socket paces itself with a timer, and a relayed path
#                       (two connections) is paced twice where the direct one is paced
#                       once. (A child namespace may only choose an algorithm the host
#                       allows to unprivileged users, which Reno always is.)
#   RESULTS=bench/results/ports.json   where the JSON goes
#   MARKDOWN=BENCHMARKS.md             whose port table is rewritten ("" for none)
#   CNET_BIN_DIR=...    use these cnet binaries instead of building them
#   CNET_PROFILE=release|debug         profile to build (default release)
set -euo pipefail

ROUNDS=${ROUNDS:-5}
RUN_SECONDS=${RUN_SECONDS:-3}
WRK_CONNECTIONS=${WRK_CONNECTIONS:-32}
MANY_PORTS=${MANY_PORTS:-1000}
DP_PROCS=${DP_PROCS:-50}
PATHS=${PATHS:-"direct cnet dnat docker-proxy"}
QUIET_BUSY=${QUIET_BUSY:-15}
QUIET_WAIT=${QUIET_WAIT:-60}
OTHER_MAX=${OTHER_MAX:-0.15}
RETRIES=${RETRIES:-2}
CC=${CC:-reno}

REPO=$(cd "$(dirname "$0")/.." && pwd)
RESULTS=${RESULTS:-$REPO/bench/results/ports.json}
MARKDOWN=${MARKDOWN-$REPO/BENCHMARKS.md}
DOCKER_PROXY=/usr/sbin/docker-proxy

# Ports. The container serves iperf3 on 5201 and HTTP on 80.
CNET_IPERF=15201 CNET_HTTP=18080     # published by cnet (-p)
DP_IPERF=25201 DP_HTTP=28080         # docker-proxy, started by this script
MANY_FIRST=20000                     # cnet: MANY_PORTS ports from here
DP_FIRST=30000                       # docker-proxy: DP_PROCS ports from here
HOSTNIC=10.200.0.1                   # a non-loopback address of the "host"

log() { printf '[ports-bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

[[ $(id -u) == 0 ]] || die "run as root (namespaces, bridges, iptables inside them)"
((MANY_FIRST + MANY_PORTS <= DP_IPERF && DP_FIRST + DP_PROCS <= 60999)) ||
    die "MANY_PORTS or DP_PROCS too large"

WORK=$(mktemp -d /tmp/portsb.XXXXXX)
chmod 755 "$WORK"   # nginx's worker (user nobody) reads the page from here
RAW=$WORK/raw
mkdir -p "$RAW"
NS=""   # host pid of the namespaces' init

# ---------------------------------------------------------------------------- cleanup
cleanup() {
    local status=$?
    set +e
    log "cleaning up"
    if [[ -n $NS && -e /proc/$NS ]]; then
        cnet_cli down >/dev/null 2>&1
        kill -KILL "$NS" 2>/dev/null
        for _ in $(seq 100); do [[ -e /proc/$NS ]] || break; sleep 0.1; done
    fi
    rm -rf "$WORK"
    # What must not be left behind (none of these is ours any more; others' may show).
    log "left on the host: netns [$(ip netns list | tr '\n' ' ')]," \
        "docker-proxy [$(pgrep -a docker-proxy | tr '\n' ' ')]," \
        "iperf3 [$(pgrep -a iperf3 | tr '\n' ' ')]"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------- namespaces

alive() { [[ -e /proc/$NS ]] || die "the benchmark's namespace (init pid $NS) is gone: killed from outside?"; }

# nsx SECONDS CMD...: run CMD inside the namespaces, bounded in time.
nsx() {
    local seconds=$1
    shift
    nsenter --target "$NS" --net --mount --pid -- timeout --kill-after=5 "$seconds" "$@"
}


cnet_cli() {
    nsx 120 env CNET_RUNTIME_DIR="$WORK/run" CNET_STATE_DIR="$WORK/state" \
        CNET_DNS__RESOLV_CONF="$WORK/upstream-resolv.conf" \
        CNET_HOSTS__HOST_RESOLV_CONF="$WORK/host-resolv.conf" "$BIN/cnet" "$@"
}

# Host pids of live processes named NAME in our pid namespace whose command line
# contains WORD (default: any).
pids_in_ns() {
    local name=$1 word=${2:-} want pid
    want=$(readlink "/proc/$NS/ns/pid")
    for pid in $(pgrep -x "$name"); do
        [[ $(readlink "/proc/$pid/ns/pid" 2>/dev/null) == "$want" ]] || continue
        grep -q ' Z ' <(cut -d')' -f2 "/proc/$pid/stat" 2>/dev/null) && continue
        [[ -z $word ]] || tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$word " || continue
        echo "$pid"
    done
    return 0
}

# ------------------------------------------------------------------------------ setup
setup_cluster() {
    echo "nameserver 127.0.0.1" >"$WORK/upstream-resolv.conf"
    echo "nameserver 127.0.0.1" >"$WORK/host-resolv.conf"
    nsx 10 ip link set lo up
    [[ $CC == host ]] || nsx 10 sysctl -qw net.ipv4.tcp_congestion_control="$CC"
    cnet_cli up -d >/dev/null
    # A non-loopback address of the "host", as tests/tests/nat.rs makes one.
    nsx 10 sh -ec "ip link add hostnic type bridge; ip addr add $HOSTNIC/24 dev hostnic
        ip link set hostnic up"

    # The one target server of every path: nginx, one worker, a small static page.
    mkdir -p "$WORK/www" "$WORK/nginx"
    printf 'hello from the port benchmark\n' >"$WORK/www/index.html"
    cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 80 backlog=4096;
        root $WORK/www;
    }
}
EOF
    cnet_cli run -d --name web -p "$CNET_IPERF:5201" -p "$CNET_HTTP:80" -- sh -c \
        "iperf3 -s -p 5201 >$WORK/iperf3-server.log 2>&1 & exec nginx -c $WORK/nginx/nginx.conf" \
        >/dev/null
    CONTAINER=$(cnet_cli inspect web | jq -r '.[0].NetworkSettings.Networks.bridge.IPAddress')
    [[ $CONTAINER =~ ^[0-9.]+$ ]] || die "no address for the container: $CONTAINER"
    wait_for 20 nsx 5 python3 -c "import socket; socket.create_connection(('$CONTAINER', 80), 1); socket.create_connection(('$CONTAINER', 5201), 1)" ||
        die "nginx or iperf3 did not start in the container"

    # docker-proxy as dockerd starts it: one process per published port, fd 3 a pipe on
    # which it writes "0\n" once listening (a file here).
    start_docker_proxy "$DP_IPERF" 5201
    start_docker_proxy "$DP_HTTP" 80
    wait_docker_proxies "$DP_IPERF" "$DP_HTTP" || die "docker-proxy did not start"
}

start_docker_proxy() {
    local host_port=$1 container_port=$2
    setsid nsenter --target "$NS" --net --mount --pid -- "$DOCKER_PROXY" -proto tcp \
        -host-ip 0.0.0.0 -host-port "$host_port" -container-ip "$CONTAINER" \
        -container-port "$container_port" </dev/null >"$WORK/dp.$host_port.log" 2>&1 \
        3>"$WORK/dp.$host_port.ready" &
    disown $!   # it dies with the namespace; no "Killed" notice from bash then
}

wait_docker_proxies() {
    local port
    for port in "$@"; do
        wait_for 20 grep -qx 0 "$WORK/dp.$port.ready" || return 1
    done
}

fetch() {
    nsx 10 python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().strip())' "$1"
}

# Packets that went through the DNAT rule of host port PORT (from iptables-save -c).
dnat_packets() {
    nsx 10 iptables-save -c -t nat |
        awk -v port="--dport $1 " 'index($0, port) && /-j DNAT/ {gsub(/[\[\]]/, "", $1); split($1, c, ":"); n += c[1]} END {print n + 0}'
}

# Who listens on PORT (the process name).
listener_of() {
    nsx 10 ss -Hltnp "sport = :$1" | sed -n 's/.*users:(("\([^"]*\)".*/\1/p' | head -1
}

# Checks that each path answers with the page and goes where it should.
verify_paths() {
    local out=$RAW/verify expected url before after
    expected=$(cat "$WORK/www/index.html")
    : >"$out"
    for url in "http://$CONTAINER/" "http://127.0.0.1:$CNET_HTTP/" \
        "http://$HOSTNIC:$CNET_HTTP/" "http://127.0.0.1:$DP_HTTP/"; do
        [[ $(fetch "$url") == "$expected" ]] || die "$url does not serve the page"
        echo "page_ok $url" >>"$out"
    done
    [[ $(listener_of "$CNET_HTTP") == cnet-nat && $(listener_of "$CNET_IPERF") == cnet-nat ]] ||
        die "cnet-nat does not hold the published ports"
    [[ $(listener_of "$DP_HTTP") == docker-proxy && $(listener_of "$DP_IPERF") == docker-proxy ]] ||
        die "docker-proxy does not hold its ports"
    echo "listeners $CNET_HTTP,$CNET_IPERF=cnet-nat $DP_HTTP,$DP_IPERF=docker-proxy" >>"$out"
    # The DNAT rule counts the hostnic path's connection and not the loopback one's.
    before=$(dnat_packets "$CNET_HTTP")
    fetch "http://127.0.0.1:$CNET_HTTP/" >/dev/null
    after=$(dnat_packets "$CNET_HTTP")
    ((after == before)) || die "loopback traffic went through DNAT (not the proxy)"
    fetch "http://$HOSTNIC:$CNET_HTTP/" >/dev/null
    after=$(dnat_packets "$CNET_HTTP")
    ((after > before)) || die "traffic to $HOSTNIC did not go through the DNAT rule"
    echo "dnat_rule loopback=+0 hostnic=+$((after - before))" >>"$out"
}

# ---------------------------------------------------------------------------- measure
# Path -> address, iperf3 port, HTTP port, and the proxy process relaying it.
target() {
    case $1 in
        direct) echo "$CONTAINER 5201 80" ;;
        cnet) echo "127.0.0.1 $CNET_IPERF $CNET_HTTP" ;;
        dnat) echo "$HOSTNIC $CNET_IPERF $CNET_HTTP" ;;
        docker-proxy) echo "127.0.0.1 $DP_IPERF $DP_HTTP" ;;
        *) die "unknown path $1" ;;
    esac
}

# The host pid of the userland process relaying PATH's traffic for KIND (iperf|http).
relay_pid() {
    case $1 in
        cnet) pids_in_ns cnet-nat | head -1 ;;
        docker-proxy) pids_in_ns docker-proxy "-host-port $([[ $2 == iperf ]] && echo $DP_IPERF || echo $DP_HTTP)" | head -1 ;;
        *) echo "" ;;
    esac
}



# CPU accounting around a run, in clock ticks: the relaying process (cnet-nat, or the
# docker-proxy of that port), every live process of our pid namespace (services,
# servers, proxies), and the machine's busy (user+nice+system+irq+softirq+steal) and
# total time.
cpu_snapshot() {
    python3 - "$1" "$NS" "$2" <<'PY'
import os, sys
relay, ns, phase = sys.argv[1], sys.argv[2], sys.argv[3]
def machine():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    # A tick spent in (soft)irq is charged to the interrupted task's stime too.
    return {"machine_busy_ticks": sum(f[0:3]) + f[5] + f[6] + f[7],
            "machine_total_ticks": sum(f[0:8])}
def ticks(pid):
    rest = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])
out = machine() if phase == "after" else {}
if relay:
    try: out["relay_ticks"] = ticks(relay)
    except OSError: pass
want, total = os.readlink(f"/proc/{ns}/ns/pid"), 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        if os.readlink(f"/proc/{pid}/ns/pid") == want: total += ticks(pid)
    except OSError: pass
out["ns_ticks"] = total
if phase != "after": out.update(machine())
for k, v in out.items(): print(f"{phase}_{k}={v}")
PY
}

# Children's CPU seconds of this shell so far (the second line of bash's `times`, which
# must run in this shell, not in a subshell: hence a file).
children_seconds() {
    awk 'NR == 2 {split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2]}' "$1"
}

# other_cores FILE: cores' worth of process time that went to neither our namespace nor
# the client during the run recorded in FILE (the run's .cpu file).
other_cores() {
    awk -F= -v ticks="$(getconf CLK_TCK)" -v cores="$(nproc)" '
        {v[$1] = $2}
        END {
            total = v["after_machine_total_ticks"] - v["before_machine_total_ticks"]
            other = v["after_machine_busy_ticks"] - v["before_machine_busy_ticks"] \
                - (v["after_ns_ticks"] - v["before_ns_ticks"]) - v["client_seconds"] * ticks
            printf "%.2f", (total > 0 ? cores * other / total : 0)
        }' "$1"
}

# run KIND PATH ROUND: one iperf3 or wrk run, raw output and CPU accounting in $RAW. A
# run during which other work on the machine (neither our namespace nor the client) took
# more than OTHER_MAX cores is run again, at most RETRIES times; each attempt is kept.
run() {
    local kind=$1 path=$2 round=$3 attempt other base=$RAW/$1.$2.$3
    for ((attempt = 1; ; attempt++)); do
        run_once "$kind" "$path" "$round" "$base"
        other=$(other_cores "$base.cpu")
        printf 'other_cores=%s\nattempt=%s\n' "$other" "$attempt" >>"$base.cpu"
        awk -v o="$other" -v m="$OTHER_MAX" 'BEGIN {exit !(o <= m)}' && break
        log "  disturbed: $other cores of other work during the run"
        ((attempt > RETRIES)) && break
        for f in out cpu; do mv "$base.$f" "$base.disturbed$attempt.$f"; done
    done
}

run_once() {
    local kind=$1 path=$2 round=$3 base=$4 address iperf_port http_port pid opens=""
    alive
    read -r address iperf_port http_port <<<"$(target "$path")"
    pid=$(relay_pid "$path" "$kind")
    log "round $round: $kind via $path"
    echo "busy_before_pct=$(wait_quiet)" >"$base.cpu"
    cpu_snapshot "$pid" before >>"$base.cpu"
    times >"$WORK/times.before"
    if [[ $kind == iperf ]]; then
        nsx $((RUN_SECONDS + 30)) iperf3 -c "$address" -p "$iperf_port" -t "$RUN_SECONDS" \
            -P 1 -J >"$base.out" 2>&1 || true
    else
        opens=$(active_opens)
        nsx $((RUN_SECONDS + 30)) wrk -t 1 -c "$WRK_CONNECTIONS" -d "${RUN_SECONDS}s" \
            --latency -H 'Connection: close' "http://$address:$http_port/" >"$base.out" 2>&1 || true
        opens=$(($(active_opens) - opens))
    fi
    times >"$WORK/times.after"
    echo "client_seconds=$(awk -v a="$(children_seconds "$WORK/times.after")" \
        -v b="$(children_seconds "$WORK/times.before")" 'BEGIN {print a - b}')" >>"$base.cpu"
    cpu_snapshot "$pid" after >>"$base.cpu"
    [[ -z $opens ]] || echo "tcp_active_opens=$opens" >>"$base.cpu"
}

# TCP connections opened so far in the "host" namespace (the client's, and the proxies'
# towards the container): each wrk request should open one, and one more through a proxy.
active_opens() {
    nsx 10 awk '/^Tcp:/ && ++n == 2 {print $6}' /proc/net/snmp
}

# ------------------------------------------------------------------------------ memory
# key=value lines: VmRSS and, from smaps_rollup, Rss/Pss/Private_* of pid $1, in KiB.
mem_of() {
    local pid=$1
    awk '/^VmRSS:/ {print "vmrss_kib=" $2}' "/proc/$pid/status"
    awk '/^(Rss|Pss|Pss_Anon|Private_Clean|Private_Dirty|Shared_Clean|Anonymous):/ {
        key = tolower(substr($1, 1, length($1) - 1)); print key "_kib=" $2}' "/proc/$pid/smaps_rollup"
    echo "threads=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")"
    echo "fds=$(ls "/proc/$pid/fd" | wc -l)"
}

cnet_services_rss() {
    local total=0 name pid
    for name in cnet-gateway cnet-ipam cnet-bridge cnet-nat cnet-dns cnet-hosts; do
        for pid in $(pids_in_ns "$name"); do
            total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")))
        done
    done
    echo "$total"
}

# mem_snapshot LABEL: cnet-nat's memory and all cnet services' RSS, after a settle.
mem_snapshot() {
    local label=$1 pid
    sleep 2
    pid=$(pids_in_ns cnet-nat | head -1)
    [[ -n $pid ]] || die "cnet-nat is not running"
    {
        echo "pid=$pid"
        mem_of "$pid"
        echo "cnet_services_vmrss_kib=$(cnet_services_rss)"
        echo "listeners=$(nsx 10 ss -Hltn | wc -l)"
    } >"$RAW/mem.cnet.$label"
}

measure_cnet_memory() {
    local last=$((MANY_FIRST + MANY_PORTS - 1)) start end
    mem_snapshot before
    start=$(date +%s.%N)
    if ! cnet_cli run -d --name many -p "$MANY_FIRST-$last:$MANY_FIRST-$last" \
        >"$RAW/mem.cnet.publish.log" 2>&1; then
        log "publishing $MANY_PORTS ports failed: $(tail -3 "$RAW/mem.cnet.publish.log")"
        return 1
    fi
    end=$(date +%s.%N)
    echo "publish_seconds=$(echo "$end $start" | awk '{printf "%.3f", $1 - $2}')" >"$RAW/mem.cnet.meta"
    echo "ports=$MANY_PORTS" >>"$RAW/mem.cnet.meta"
    echo "published=$(cnet_cli port many | wc -l)" >>"$RAW/mem.cnet.meta"
    mem_snapshot after
    start=$(date +%s.%N)
    cnet_cli rm -f many >/dev/null
    end=$(date +%s.%N)
    echo "unpublish_seconds=$(echo "$end $start" | awk '{printf "%.3f", $1 - $2}')" >>"$RAW/mem.cnet.meta"
    mem_snapshot removed
}

measure_docker_proxy_memory() {
    local i ports=() pid n=0
    for ((i = 0; i < DP_PROCS; i++)); do
        start_docker_proxy $((DP_FIRST + i)) 80
        ports+=($((DP_FIRST + i)))
    done
    wait_docker_proxies "${ports[@]}" || { log "some docker-proxy did not start"; return 1; }
    sleep 2
    : >"$RAW/mem.dp"
    for pid in $(pids_in_ns docker-proxy); do
        # Only the DP_PROCS started here, not the two relaying the measured paths.
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE -- "-host-port ($DP_IPERF|$DP_HTTP) " && continue
        { echo "--- pid=$pid"; mem_of "$pid"; } >>"$RAW/mem.dp"
        n=$((n + 1))
    done
    echo "processes=$n" >"$RAW/mem.dp.meta"
    # Stop exactly those processes (by pid; they are ours, in our namespace).
    for pid in $(pids_in_ns docker-proxy); do
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE -- "-host-port ($DP_IPERF|$DP_HTTP) " && continue
        kill "$pid"
    done
}

# ------------------------------------------------------------------------------- main
install_packages iperf3 wrk nginx-light docker.io iproute2 iptables util-linux procps python3 jq
for tool in iperf3 wrk nginx jq nsenter unshare python3 "$DOCKER_PROXY"; do
    command -v "$tool" >/dev/null || die "$tool is missing and could not be installed"
done
build_cnet
log "cnet binaries: $BIN ($PROFILE)"

NS=$(new_ns)
log "namespace init pid $NS, work dir $WORK"
setup_cluster
verify_paths
log "container $CONTAINER; paths verified"

# Memory first, on a fresh cnet-nat (2 ports published), then the traffic rounds.
log "memory: publishing $MANY_PORTS ports with cnet"
measure_cnet_memory || log "cnet memory figure skipped"
log "memory: $DP_PROCS docker-proxy processes"
measure_docker_proxy_memory || log "docker-proxy memory figure skipped"

# Warm-up (ARP, caches, lazy init); not recorded.
for path in $PATHS; do
    read -r address iperf_port http_port <<<"$(target "$path")"
    nsx 20 iperf3 -c "$address" -p "$iperf_port" -t 1 >/dev/null 2>&1 || true
    nsx 20 wrk -t 1 -c "$WRK_CONNECTIONS" -d 1s -H 'Connection: close' \
        "http://$address:$http_port/" >/dev/null 2>&1 || true
done

read -r -a paths <<<"$PATHS"
count=${#paths[@]}
for ((round = 1; round <= ROUNDS; round++)); do
    for kind in iperf wrk; do
        for ((i = 0; i < count; i++)); do
            run "$kind" "${paths[$(((i + round - 1) % count))]}" "$round"
        done
    done
done
mem_snapshot after_rounds

{
    echo "kernel=$(uname -r)"
    echo "cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "cores=$(nproc)"
    echo "clock_ticks=$(getconf CLK_TCK)"
    echo "page_kib=$(($(getconf PAGESIZE) / 1024))"
    echo "memory_gib=$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "iperf3=$(iperf3 --version 2>&1 | head -1)"
    echo "wrk=$(wrk -v 2>&1 | head -1)"
    echo "nginx=$(nginx -v 2>&1)"
    echo "docker_proxy=docker.io $(dpkg-query -W -f='${Version}' docker.io), $(grep -aom1 'go1\.[0-9.]*' "$DOCKER_PROXY" || echo 'go ?')"
    echo "tokio=$(awk '/^name = "tokio"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' "$REPO/Cargo.lock")"
    echo "cnet_profile=$PROFILE"
    echo "cnet_commit=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
    echo "container=$CONTAINER"
    echo "rounds=$ROUNDS"
    echo "run_seconds=$RUN_SECONDS"
    echo "wrk_connections=$WRK_CONNECTIONS"
    echo "many_ports=$MANY_PORTS"
    echo "dp_procs=$DP_PROCS"
    echo "paths=$PATHS"
    echo "quiet_busy=$QUIET_BUSY"
    echo "quiet_wait=$QUIET_WAIT"
    echo "other_max=$OTHER_MAX"
    echo "retries=$RETRIES"
    echo "congestion_control=$(nsx 5 sysctl -n net.ipv4.tcp_congestion_control) (host: $(sysctl -n net.ipv4.tcp_congestion_control))"
} >"$RAW/machine"

mkdir -p "$(dirname "$RESULTS")"
python3 - "$RAW" "$RESULTS" "$MARKDOWN" <<'PY'
"""bench/ports.sh's raw files -> ports.json and the table of BENCHMARKS.md."""
import datetime
import json
import re
import statistics
import sys
from pathlib import Path

raw, out_json, markdown = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
BEGIN, END = "<!-- ports-results:begin -->", "<!-- ports-results:end -->"
LABELS = {
    "direct": "direct (container address)",
    "cnet": "cnet proxy (127.0.0.1)",
    "dnat": "cnet kernel DNAT (10.200.0.1)",
    "docker-proxy": "docker-proxy (127.0.0.1)",
}
TARGETS = {
    "throughput": "cnet proxy within 10% of direct throughput",
    "conn_rate": "cnet proxy >= 2x docker-proxy's connection rate",
    "memory": "cnet < 1/20 of docker-proxy's memory per published port",
}


def kv(path: Path) -> dict:
    data = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                data[key.strip()] = value.strip()
    return data


machine = kv(raw / "machine")
ticks = float(machine.get("clock_ticks", 100))
paths = machine["paths"].split()
rounds = int(machine["rounds"])


def cpu(path: Path) -> dict:
    c = kv(path)
    d = lambda key: float(c[f"after_{key}"]) - float(c[f"before_{key}"])
    total = d("machine_total_ticks")
    cores = int(machine["cores"])
    result = {
        "busy_before_pct": float(c.get("busy_before_pct", "nan")),
        "machine_busy_cores": round(cores * d("machine_busy_ticks") / total, 3),
        "namespace_cores": round(cores * d("ns_ticks") / total, 3),
        "client_cpu_seconds": float(c.get("client_seconds", 0)),
        "other_cores": float(c["other_cores"]),
        "attempt": int(c.get("attempt", 1)),
        "disturbed": float(c["other_cores"]) > float(machine["other_max"]),
    }
    if "before_relay_ticks" in c and "after_relay_ticks" in c:
        result["relay_cpu_seconds"] = d("relay_ticks") / ticks
    if "tcp_active_opens" in c:
        result["tcp_active_opens"] = int(c["tcp_active_opens"])
    return result


def parse_iperf(text: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError:
        return {"error": text.strip()[-300:]}
    if "error" in data:
        return {"error": data["error"]}
    end = data["end"]
    return {
        "gbit_s": end["sum_received"]["bits_per_second"] / 1e9,
        "bytes": end["sum_received"]["bytes"],
        "retransmits": end["sum_sent"].get("retransmits"),
        "seconds": end["sum_received"]["seconds"],
    }


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(text: str) -> dict:
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not rate:
        return {"error": text.strip()[-300:]}
    result = {"conn_s": float(rate.group(1))}
    done = re.search(r"(\d+) requests in ([\d.]+)s", text)
    if done:
        result["requests"] = int(done.group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    result["socket_errors"] = sum(map(int, errors.groups())) if errors else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    result["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", text, re.M)
        if m:
            result[f"latency_p{pct}_ms"] = ms(m.group(1))
    return result


def spread(values: list) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    median = statistics.median(values)
    return {
        "median": median,
        "min": min(values),
        "max": max(values),
        "spread_pct": 100 * (max(values) - min(values)) / median if median else None,
        "n": len(values),
    }


runs = {"iperf": {}, "wrk": {}}
for kind, parse in (("iperf", parse_iperf), ("wrk", parse_wrk)):
    for path in paths:
        per_round = []
        for r in range(1, rounds + 1):
            out = raw / f"{kind}.{path}.{r}.out"
            if not out.exists():
                continue
            entry = {"round": r, **parse(out.read_text()), **cpu(raw / f"{kind}.{path}.{r}.cpu")}
            if kind == "iperf" and "relay_cpu_seconds" in entry and entry.get("bytes"):
                entry["relay_cpu_seconds_per_gb"] = entry["relay_cpu_seconds"] / (entry["bytes"] / 1e9)
            if kind == "wrk" and "relay_cpu_seconds" in entry and entry.get("requests"):
                entry["relay_cpu_us_per_conn"] = 1e6 * entry["relay_cpu_seconds"] / entry["requests"]
            if kind == "wrk" and entry.get("requests") and "tcp_active_opens" in entry:
                entry["tcp_opens_per_request"] = round(entry["tcp_active_opens"] / entry["requests"], 3)
            per_round.append(entry)
        runs[kind][path] = per_round

summary = {}
for path in paths:
    it, wr = runs["iperf"].get(path, []), runs["wrk"].get(path, [])
    summary[path] = {
        "throughput_gbit_s": spread([e.get("gbit_s") for e in it]),
        "relay_cpu_seconds_per_gb": spread([e.get("relay_cpu_seconds_per_gb") for e in it]),
        "conn_per_s": spread([e.get("conn_s") for e in wr]),
        "latency_p50_ms": spread([e.get("latency_p50_ms") for e in wr]),
        "latency_p99_ms": spread([e.get("latency_p99_ms") for e in wr]),
        "relay_cpu_us_per_conn": spread([e.get("relay_cpu_us_per_conn") for e in wr]),
        "tcp_opens_per_request": spread([e.get("tcp_opens_per_request") for e in wr]),
        "failed_runs": sum("error" in e for e in it + wr),
        "socket_errors": sum(e.get("socket_errors", 0) for e in wr),
        "non_2xx": sum(e.get("non_2xx", 0) for e in wr),
    }


def med(path: str, key: str):
    s = summary.get(path, {}).get(key)
    return s["median"] if s else None


def ratio(a, b):
    return a / b if a is not None and b else None


# Memory.
def pages(d: dict, key: str) -> float | None:
    return float(d[key]) if key in d else None


memory = {}
before, after, removed, after_rounds = (kv(raw / f"mem.cnet.{x}") for x in ("before", "after", "removed", "after_rounds"))
meta = kv(raw / "mem.cnet.meta")
if before and after:
    n = int(meta["ports"])
    memory["cnet"] = {
        "ports_published": n,
        "ports_listed_by_cnet_port": int(meta.get("published", 0)),
        "publish_seconds": float(meta["publish_seconds"]),
        "unpublish_seconds": float(meta["unpublish_seconds"]) if "unpublish_seconds" in meta else None,
        "cnet_nat": {label: {k: (int(v) if v.isdigit() else v) for k, v in d.items()}
                     for label, d in (("before", before), ("after", after), ("after_rm", removed),
                                      ("after_traffic_rounds", after_rounds)) if d},
        "rss_per_port_kib": (float(after["vmrss_kib"]) - float(before["vmrss_kib"])) / n,
        "pss_per_port_kib": (float(after["pss_kib"]) - float(before["pss_kib"])) / n,
        "all_services_rss_per_port_kib": (float(after["cnet_services_vmrss_kib"]) - float(before["cnet_services_vmrss_kib"])) / n,
    }
dp_text = (raw / "mem.dp").read_text() if (raw / "mem.dp").exists() else ""
procs = []
for block in dp_text.split("--- ")[1:]:
    pairs = [line.split("=", 1) for line in block.splitlines() if "=" in line]
    procs.append({k: int(v) for k, v in pairs if v.isdigit()})
if procs:
    memory["docker_proxy"] = {
        "processes": len(procs),
        "rss_per_process_kib": spread([p["vmrss_kib"] for p in procs]),
        "pss_per_process_kib": spread([p["pss_kib"] for p in procs]),
        "private_per_process_kib": spread([p.get("private_clean_kib", 0) + p.get("private_dirty_kib", 0) for p in procs]),
        "threads_per_process": spread([p["threads"] for p in procs]),
        "rss_total_kib": sum(p["vmrss_kib"] for p in procs),
        "pss_total_kib": sum(p["pss_kib"] for p in procs),
        "note": "one process per published port and address family; Docker 20.10 on a host "
        "with IPv6 starts a second one for [::] per port, not counted here",
    }

targets = {}
tp = ratio(med("cnet", "throughput_gbit_s"), med("direct", "throughput_gbit_s"))
targets["throughput"] = {"target": TARGETS["throughput"], "cnet_over_direct": tp,
                         "met": tp is not None and tp >= 0.9}
cr = ratio(med("cnet", "conn_per_s"), med("docker-proxy", "conn_per_s"))
targets["conn_rate"] = {"target": TARGETS["conn_rate"], "cnet_over_docker_proxy": cr,
                        "met": cr is not None and cr >= 2}
if "cnet" in memory and "docker_proxy" in memory:
    c, d = memory["cnet"], memory["docker_proxy"]
    rss = c["rss_per_port_kib"] / d["rss_per_process_kib"]["median"]
    pss = c["rss_per_port_kib"] / d["pss_per_process_kib"]["median"]
    targets["memory"] = {"target": TARGETS["memory"], "cnet_rss_over_docker_proxy_rss": rss,
                         "cnet_rss_over_docker_proxy_pss": pss, "met": pss < 1 / 20,
                         "judged_on": "docker-proxy's PSS (its shared pages split among "
                         "the processes), the stricter of the two"}
else:
    targets["memory"] = {"target": TARGETS["memory"], "met": None}

report = {
    "benchmark": "port publishing (issue 5)",
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "command": "bench/ports.sh",
    "machine": {k: machine[k] for k in ("cpu", "cores", "memory_gib", "kernel", "os") if k in machine},
    "versions": {k: machine[k] for k in ("cnet_commit", "cnet_profile", "tokio", "iperf3", "wrk", "nginx", "docker_proxy") if k in machine},
    "method": {
        "placement": "one cnet cluster in network+mount+pid namespaces that play the host; "
        "container `web` (default bridge, " + machine.get("container", "?") + ") runs iperf3 -s and "
        "nginx (1 worker, 30-byte static page); every client runs in the host namespace; "
        "clients, servers and proxies share the machine's " + machine.get("cores", "?") + " cores",
        "paths": LABELS,
        "throughput": f"iperf3 -c ADDR -p PORT -t {machine['run_seconds']} -P 1 -J; "
        "end.sum_received.bits_per_second",
        "conn_rate": f"wrk -t 1 -c {machine['wrk_connections']} -d {machine['run_seconds']}s --latency "
        "-H 'Connection: close' (nginx closes after each response, so every request is a "
        "new TCP connection through the path); conn/s = wrk's Requests/sec. Checked with the "
        "host namespace's TCP ActiveOpens counter: tcp_opens_per_request is 1 on the direct "
        "and DNAT paths and 2 through a proxy (its own connection to the container)",
        "rounds": f"{rounds} rounds after a 1 s warm-up of each path; each round runs iperf3 "
        "on every path, then wrk on every path, the order rotated each round; median and "
        "min-max over rounds; spread_pct = (max - min) / median",
        "relay_cpu": "CPU time (utime+stime from /proc/PID/stat) of the relaying process "
        "(cnet-nat; the docker-proxy of that port) over each run",
        "quiet": f"before each run, wait (at most {machine['quiet_wait']} s) until the machine "
        f"was under {machine['quiet_busy']} % busy for a second; busy_before_pct records it. "
        "other_cores = the machine's busy time (user+nice+system+irq+softirq+steal) during the run minus "
        "the CPU time of every process in the benchmark's pid namespace and of the client, "
        f"in cores; a run with more than {machine['other_max']} is repeated (at most "
        f"{machine['retries']} times; the last attempt is kept, earlier ones stay in the raw "
        "files only) and flagged `disturbed` if it still is",
        "memory": f"cnet: cnet-nat's VmRSS (and PSS) with 2 ports published, then after "
        f"`cnet run -d --name many -p A-B:A-B` publishing {machine['many_ports']} TCP ports "
        "(one listener, one tokio task, DNAT rules and a record each), 2 s settle; per port = "
        f"delta / ports. docker-proxy: {machine['dp_procs']} processes started as dockerd "
        "starts them, each one port; per port = RSS (and PSS) of one process. Kernel socket "
        "memory (the same for both) is not counted",
        "verification": (raw / "verify").read_text().splitlines() if (raw / "verify").exists() else [],
    },
    "runs": runs,
    "summary": summary,
    "ratios": {
        "throughput_vs_direct": {p: ratio(med(p, "throughput_gbit_s"), med("direct", "throughput_gbit_s")) for p in paths},
        "conn_rate_vs_direct": {p: ratio(med(p, "conn_per_s"), med("direct", "conn_per_s")) for p in paths},
        "cnet_proxy_vs_docker_proxy": {
            "throughput": ratio(med("cnet", "throughput_gbit_s"), med("docker-proxy", "throughput_gbit_s")),
            "conn_rate": cr,
        },
    },
    "memory": memory,
    "targets": targets,
}
out_json.write_text(json.dumps(report, indent=2) + "\n")


def rng(s: dict | None, digits: int) -> str:
    if not s:
        return "—"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


lines = [
    f"Run {report['date'][:10]} on {machine.get('cpu', '?')}, {machine.get('cores')} cores, "
    f"{machine.get('os')}, kernel {machine.get('kernel')}; cnet {machine.get('cnet_commit')} "
    f"({machine.get('cnet_profile')}); TCP congestion control {machine.get('congestion_control')}; "
    f"{rounds} rounds of {machine['run_seconds']} s per path and metric; median (min–max).",
    "",
    "| path | throughput, Gbit/s | vs direct | relay CPU s/GB | new connections/s | vs direct | p50 / p99 ms | relay CPU µs/conn |",
    "|---|---|---|---|---|---|---|---|",
]
for p in paths:
    s = summary[p]
    lat = "—"
    if s["latency_p50_ms"] and s["latency_p99_ms"]:
        lat = f"{s['latency_p50_ms']['median']:.2f} / {s['latency_p99_ms']['median']:.2f}"
    lines.append(
        f"| {LABELS[p]} | {rng(s['throughput_gbit_s'], 2)} | "
        f"{pct(report['ratios']['throughput_vs_direct'][p])} | "
        f"{rng(s['relay_cpu_seconds_per_gb'], 2) if s['relay_cpu_seconds_per_gb'] else '—'} | "
        f"{rng(s['conn_per_s'], 0)} | {pct(report['ratios']['conn_rate_vs_direct'][p])} | {lat} | "
        f"{rng(s['relay_cpu_us_per_conn'], 0) if s['relay_cpu_us_per_conn'] else '—'} |"
    )
problems = [f"{p}: {summary[p]['failed_runs']} failed runs, {summary[p]['socket_errors']} socket errors, "
            f"{summary[p]['non_2xx']} non-2xx" for p in paths
            if summary[p]["failed_runs"] or summary[p]["socket_errors"] or summary[p]["non_2xx"]]
if problems:
    lines += ["", "Errors: " + "; ".join(problems) + "."]
every = [e for k in runs for p in runs[k] for e in runs[k][p]]
retried = sum(e["attempt"] > 1 for e in every)
disturbed = [e for e in every if e["disturbed"]]
if retried or disturbed:
    lines += ["", f"{retried} of {len(every)} runs were repeated because other work on the machine "
              f"took more than {machine['other_max']} cores during them"
              + (f"; {len(disturbed)} were still disturbed after {machine['retries']} retries "
                 f"(up to {max(e['other_cores'] for e in disturbed):.2f} cores of other work)" if disturbed else "")
              + "."]

lines += ["", "| memory per published port | KiB |", "|---|---|"]
if "cnet" in memory:
    c = memory["cnet"]
    lines.append(f"| cnet-nat, RSS delta / {c['ports_published']} ports (published in {c['publish_seconds']:.2f} s) | {c['rss_per_port_kib']:.1f} |")
    lines.append(f"| all cnet services, RSS delta / {c['ports_published']} ports | {c['all_services_rss_per_port_kib']:.1f} |")
if "docker_proxy" in memory:
    d = memory["docker_proxy"]
    lines.append(f"| docker-proxy, RSS of one process (median of {d['processes']}) | {d['rss_per_process_kib']['median']:.0f} |")
    lines.append(f"| docker-proxy, PSS of one process (median of {d['processes']}; shared pages split) | {d['pss_per_process_kib']['median']:.0f} |")

lines += ["", "| target | measured | met |", "|---|---|---|"]
t = targets
lines.append(f"| {TARGETS['throughput']} | cnet proxy = {pct(t['throughput']['cnet_over_direct'])} of direct | {'yes' if t['throughput']['met'] else 'no'} |")
lines.append(f"| {TARGETS['conn_rate']} | {t['conn_rate']['cnet_over_docker_proxy']:.2f}× docker-proxy | {'yes' if t['conn_rate']['met'] else 'no'} |"
             if t["conn_rate"]["cnet_over_docker_proxy"] is not None else f"| {TARGETS['conn_rate']} | — | — |")
if "cnet_rss_over_docker_proxy_pss" in t["memory"]:
    m = t["memory"]
    lines.append(f"| {TARGETS['memory']} | 1/{1 / m['cnet_rss_over_docker_proxy_pss']:.0f} of its PSS, 1/{1 / m['cnet_rss_over_docker_proxy_rss']:.0f} of its RSS | {'yes' if m['met'] else 'no'} |")
else:
    lines.append(f"| {TARGETS['memory']} | not measured | — |")
table = "\n".join(lines)
print(table)

if markdown:
    md = Path(markdown)
    text = md.read_text() if md.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Port publishing\n\n" + block + "\n"
    md.write_text(text)
PY
log "wrote $RESULTS${MARKDOWN:+ and $MARKDOWN}"
