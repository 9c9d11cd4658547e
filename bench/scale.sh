#!/usr/bin/env bash
# Scale benchmark (issue 8 item 2; issue 7's 1,000-container benchmark): attach N
# network namespaces to one bridge, one after another, and watch what each attach costs
# and how much memory the stack holds as N grows. One command, as root:
#
#     bench/scale.sh                 # N = 10, 100, 500, 1000: about 15 minutes
#     SCALE_N="10 100" bench/scale.sh   # a quick run: about 2 minutes
#
# writes bench/results/scale.json, bench/results/scale.svg (per-attach time as N
# grows), bench/results/scale-memory.svg and the table of the "Scale" section of
# BENCHMARKS.md (between the scale-results markers).
#
# Systems (bench/systems.sh sets them up, bench/nsworker.py runs and times them):
#   cnet-run    `cnet run -d --name sI --network bench`: containers on one user network
#               with a /16 subnet (the 1,000-container benchmark of issue 7)
#   netavark    `ip netns add` + `netavark setup` per namespace (aardvark-dns on)
#   cni         `ip netns add` + bridge/host-local/portmap ADD per namespace
#   docker-run  `docker run -d --network bench` per container, only up to DOCKER_MAX_N
#               (default 100): each Docker container also costs a containerd-shim
#               process (~10 MiB) and a vfs copy of its image, and an attach takes
#               ~0.4 s, so 1,000 of them would take most of the run and GiBs of memory
# The systems grow together: in each step every system (order rotated) attaches BATCH
# more namespaces, so drift of the shared machine touches all alike. At each N of
# SCALE_N, the RSS and PSS of every process of each stack is recorded (cnet's six
# services and its supervisor; aardvark-dns; dockerd, containerd and the shims; the
# containers' own processes separately). Then everything is detached again, last first,
# in the same interleaved steps, and the memory recorded once more.
#
# Safety: as bench/attach.sh: everything in throwaway namespaces, nothing on the host's
# interfaces, routes or firewall; the only traffic is a ping from a namespace of ours to
# a bridge of ours, for the first and the last namespace of each system.
#
# Knobs (environment):
#   SCALE_N="10 100 500 1000"   checkpoints; the largest is how far every system goes
#   DOCKER_MAX_N=100            how far docker-run goes (0: not at all)
#   BATCH=10                    attaches per system per step
#   SYSTEMS="cnet-run netavark cni docker-run"
#   QUIET_BUSY=15 QUIET_WAIT=5  before each step, wait (at most QUIET_WAIT s) for a
#                               machine under QUIET_BUSY % busy; steps during which other
#                               work took OTHER_MAX=0.15 cores or more are flagged
#   RESULTS=bench/results/scale.json  SVG=bench/results/scale.svg
#   MEM_SVG=bench/results/scale-memory.svg  MARKDOWN=BENCHMARKS.md ("" for none)
#   CNET_BIN_DIR=...  CNET_PROFILE=release|debug
set -euo pipefail

export SCALE_N=${SCALE_N:-"10 100 500 1000"} DOCKER_MAX_N=${DOCKER_MAX_N:-100} BATCH=${BATCH:-10}
export SYSTEMS=${SYSTEMS:-"cnet-run netavark cni docker-run"}
export QUIET_BUSY=${QUIET_BUSY:-15} QUIET_WAIT=${QUIET_WAIT:-5} OTHER_MAX=${OTHER_MAX:-0.15}

REPO=$(cd "$(dirname "$0")/.." && pwd)
export RESULTS=${RESULTS:-$REPO/bench/results/scale.json}
export SVG=${SVG:-$REPO/bench/results/scale.svg}
export MEM_SVG=${MEM_SVG:-$REPO/bench/results/scale-memory.svg}
export MARKDOWN=${MARKDOWN-$REPO/BENCHMARKS.md}

log() { printf '[scale-bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
# shellcheck source=bench/systems.sh
source "$REPO/bench/systems.sh"

[[ $(id -u) == 0 ]] || die "run as root (namespaces, bridges, veths)"
max_n=$(tr ' ' '\n' <<<"$SCALE_N" | sort -n | tail -1)
((max_n <= 1000)) || die "at most 1000 per system: a Linux bridge takes 1024 ports"
# Every cnet container and Docker shim is a process; every namespace holds open files.
ulimit -n 65536 2>/dev/null || true

WORK=$(mktemp -d /tmp/sclb.XXXXXX)
export WORK
trap 'status=$?; log "cleaning up (detaching what is left takes a while)"; cleanup_systems; exit $status' EXIT
trap 'exit 130' INT TERM

prepare_systems

if ((DOCKER_MAX_N == 0)); then SYSTEMS=${SYSTEMS//docker-run/}; export SYSTEMS; fi
start_systems_for "$SYSTEMS"

write_machine_facts "$WORK/machine"

mkdir -p "$(dirname "$RESULTS")"
/usr/bin/python3 "$REPO/bench/scale.py"
log "wrote $RESULTS, $SVG, $MEM_SVG${MARKDOWN:+ and $MARKDOWN}"
