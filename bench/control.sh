#!/usr/bin/env bash
# Control-plane benchmark (issue 8 item 5): what a `cnet run` costs end to end and in
# which service the time goes, and how long the cluster takes to restart and reconcile
# with 1,000 containers. One command, as root:
#
#     bench/control.sh                    # about 7 minutes (most of it 1,000 containers)
#     RESTART_N=100 bench/control.sh      # quicker
#
# writes bench/results/control.json, bench/results/control.svg (the breakdown),
# bench/results/control-restart.svg and the table of the "Control plane" section of
# BENCHMARKS.md (between the control-results markers).
#
# How: one cluster (`cnet up -d`) in throwaway network + mount + pid namespaces, started
# with OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 (the services export OTLP over
# gRPC; services/common/src/telemetry.rs) and OTEL_BSP_SCHEDULE_DELAY=200, and
# bench/otlp_receiver.py (Debian's python3-grpcio, protobuf decoded by hand) listening
# there, on loopback inside the namespace. bench/control.py then
#   1. times ROUNDS × REPS pairs of `cnet run -d` / `cnet rm -f` and of
#      `cnet network connect` / `disconnect` (interleaved, after a quiet-machine wait),
#      finds each call's trace and splits it into client, gateway, ipam, bridge, nat, dns
#      and hosts time;
#   2. kills every service (SIGKILL, the supervisor first) RESTARTS times and starts the
#      cluster again with `cnet up -d`, timing until every service is SERVING, `cnet ps`
#      lists every container and `cnet system check` is clean; first with one container,
#      then with RESTART_N (made with `cnet run -d`), plus one `cnet down` / `cnet up -d`.
#      Restarts run without the exporter.
#
# Safety: everything lives in the namespaces, which are deleted at the end; the host's
# interfaces, routes and firewall are never touched; traffic goes to loopback and to
# the cluster's own bridge only.
#
# Knobs (environment):
#   ROUNDS=5 REPS=10     latency rounds, and pairs per operation per round
#   RESTART_N=1000       containers for the restart figure
#   RESTARTS=3           SIGKILL restarts at each size
#   QUIET_BUSY=15 QUIET_WAIT=20 OTHER_MAX=0.15   as in the other benchmarks
#   RESULTS=bench/results/control.json  SVG=bench/results/control.svg
#   RESTART_SVG=bench/results/control-restart.svg  MARKDOWN=BENCHMARKS.md ("" for none)
#   CNET_BIN_DIR=...  CNET_PROFILE=release|debug
set -euo pipefail

export ROUNDS=${ROUNDS:-5} REPS=${REPS:-10} RESTART_N=${RESTART_N:-1000} RESTARTS=${RESTARTS:-3}
export QUIET_BUSY=${QUIET_BUSY:-15} QUIET_WAIT=${QUIET_WAIT:-20} OTHER_MAX=${OTHER_MAX:-0.15}

REPO=$(cd "$(dirname "$0")/.." && pwd)
export RESULTS=${RESULTS:-$REPO/bench/results/control.json}
export SVG=${SVG:-$REPO/bench/results/control.svg}
export RESTART_SVG=${RESTART_SVG:-$REPO/bench/results/control-restart.svg}
export MARKDOWN=${MARKDOWN-$REPO/BENCHMARKS.md}
OTLP=127.0.0.1:4317

log() { printf '[control-bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
# shellcheck source=bench/systems.sh
source "$REPO/bench/systems.sh"

[[ $(id -u) == 0 ]] || die "run as root (namespaces, bridges, veths)"
((RESTART_N <= 1000)) || die "RESTART_N: at most 1000 (a Linux bridge takes 1024 ports)"
ulimit -n 65536 2>/dev/null || true

WORK=$(mktemp -d /tmp/ctlb.XXXXXX)
export WORK
trap 'status=$?; log "cleaning up"; cleanup_systems; exit $status' EXIT
trap 'exit 130' INT TERM

install_packages python3-grpcio iproute2 iptables iputils-ping util-linux procps python3 jq
/usr/bin/python3 -c 'import grpc' 2>/dev/null || die "python3-grpcio is missing and could not be installed"
build_cnet
log "cnet binaries: $BIN ($PROFILE)"
bench_cgroup_enter

NS[cnet]=$(new_ns)
dir=$WORK/cnet
mkdir -p "$dir"
log "setting up cnet (namespace init pid ${NS[cnet]}) with an OTLP receiver at $OTLP"
echo "nameserver 127.0.0.1" >"$dir/resolv.conf"
nsx "${NS[cnet]}" 10 ip link set lo up
nsd "${NS[cnet]}" "$dir/receiver.log" /usr/bin/python3 "$REPO/bench/otlp_receiver.py" "$OTLP" "$dir/spans.jsonl"
wait_for 20 grep -q listening "$dir/receiver.log" || { cat "$dir/receiver.log" >&2; die "the OTLP receiver did not start"; }
OTEL_EXPORTER_OTLP_ENDPOINT=http://$OTLP OTEL_BSP_SCHEDULE_DELAY=200 cnet_in cnet up -d >/dev/null
cnet_in cnet network create --subnet 10.210.0.0/16 bench >/dev/null
echo "cnet $("$BIN/cnet" --version | awk '{print $2}') (${PROFILE/given (CNET_BIN_DIR)/release binaries from CNET_BIN_DIR}, commit $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown))" >"$WORK/version"
{
    echo "kernel=$(uname -r)"
    echo "cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
    echo "cores=$(nproc)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
} >"$WORK/machine"

mkdir -p "$(dirname "$RESULTS")"
# control.py runs inside the namespaces, with the cluster's CLI environment; the `cnet`
# commands it times see exactly what a user on that "host" would.
nsx "${NS[cnet]}" 7200 env CNET_RUNTIME_DIR="$dir/run" CNET_STATE_DIR="$dir/state" \
    CNET_DNS__RESOLV_CONF="$dir/resolv.conf" CNET_HOSTS__HOST_RESOLV_CONF="$dir/resolv.conf" \
    OTEL_EXPORTER_OTLP_ENDPOINT="http://$OTLP" OTEL_BSP_SCHEDULE_DELAY=200 \
    BIN="$BIN" SPANS="$dir/spans.jsonl" /usr/bin/python3 "$REPO/bench/control.py"
log "wrote $RESULTS, $SVG, $RESTART_SVG${MARKDOWN:+ and $MARKDOWN}"
