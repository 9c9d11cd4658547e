#!/usr/bin/env bash
# Attach benchmark (issue 8, items 1 and 2): how long it takes to give a network
# namespace a working address on a bridge, and to take it away again, in cnet and in the
# stacks people use for the same job. One command, as root:
#
#     bench/attach.sh
#
# writes bench/results/attach.json, bench/results/attach.svg and the table of the
# "Attach" section of BENCHMARKS.md (between the attach-results markers).
#
# Systems (bench/nsworker.py says exactly what each runs and times):
#   cnet-connect    `cnet network connect bench anchor` / `cnet network disconnect`: a
#                   running container gets (loses) one more network; cnet's network-only
#                   path, the analogue of docker network connect
#   cnet-run        `cnet run -d --name aI --network bench` / `cnet rm -f aI`: cnet's full
#                   path (record, address, namespace, veth, DNS, /etc files, process)
#   netavark        `netavark setup` / `teardown` on a namespace made with `ip netns add`
#                   (Podman's backend, with aardvark-dns as for any podman-created network)
#   cni             bridge + host-local + portmap, chained ADD / DEL as libcni runs them
#   docker-connect  `docker network connect bench anchor` / `docker network disconnect`
#   docker-run      `docker run -d --network bench` / `docker rm -f` (Docker's full path)
# Each system lives in throwaway namespaces of its own (bench/systems.sh); one worker per
# system runs inside them and times only the system's own commands.
#
# Method: ROUNDS rounds; in each, every system (order rotated each round) does REPS
# attach/detach pairs back to back, after waiting for a quiet machine. The first pair of
# each batch is checked (an address in the network's subnet, and a ping from inside the
# namespace to the bridge's gateway answers). A batch during which other work on the
# machine took OTHER_MAX cores or more is run again (RETRIES times at most; the least
# disturbed one counts). p50/p90 over all pairs; spread = min-max of the rounds' p50s.
#
# Safety: the host's interfaces, routes and firewall are never touched; every bridge,
# veth, rule and daemon lives in the namespaces, and the only traffic is a ping from a
# namespace of ours to a bridge of ours. Killing each namespace's init at the end takes
# everything with it.
#
# Knobs (environment):
#   ROUNDS=10 REPS=10   rounds, and attach/detach pairs per system per round
#   SYSTEMS="cnet-connect cnet-run netavark cni docker-connect docker-run"
#   QUIET_BUSY=15       before each batch wait (at most QUIET_WAIT=20 s) until the
#                       machine was under this % busy for a second
#   OTHER_MAX=0.15      a batch during which other work took this many cores or more
#   RETRIES=2           is run again, at most this many times
#   RESULTS=bench/results/attach.json  SVG=bench/results/attach.svg
#   MARKDOWN=BENCHMARKS.md             whose attach table is rewritten ("" for none)
#   CNET_BIN_DIR=...    use these cnet binaries instead of building them
#   CNET_PROFILE=release|debug
# Expected run time: about 6 minutes on 2 cores (1 minute of setup, mostly dockerd) on a
# quiet machine; on a busy one every batch may wait QUIET_WAIT and be retried RETRIES
# times (up to ~40 minutes): RETRIES=0 QUIET_WAIT=5 keeps it near 6 minutes.
set -euo pipefail

export ROUNDS=${ROUNDS:-10} REPS=${REPS:-10}
export SYSTEMS=${SYSTEMS:-"cnet-connect cnet-run netavark cni docker-connect docker-run"}
export QUIET_BUSY=${QUIET_BUSY:-15} QUIET_WAIT=${QUIET_WAIT:-20}
export OTHER_MAX=${OTHER_MAX:-0.15} RETRIES=${RETRIES:-2}

REPO=$(cd "$(dirname "$0")/.." && pwd)
export RESULTS=${RESULTS:-$REPO/bench/results/attach.json}
export SVG=${SVG:-$REPO/bench/results/attach.svg}
export MARKDOWN=${MARKDOWN-$REPO/BENCHMARKS.md}

log() { printf '[attach-bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
# shellcheck source=bench/systems.sh
source "$REPO/bench/systems.sh"

[[ $(id -u) == 0 ]] || die "run as root (namespaces, bridges, veths)"

# Short path on purpose: dockerd puts unix sockets under --exec-root (108-byte limit).
WORK=$(mktemp -d /tmp/attb.XXXXXX)
export WORK
trap 'status=$?; log "cleaning up"; cleanup_systems; exit $status' EXIT
trap 'exit 130' INT TERM

prepare_systems

start_systems_for "$SYSTEMS"

write_machine_facts "$WORK/machine"

mkdir -p "$(dirname "$RESULTS")"
/usr/bin/python3 "$REPO/bench/attach.py"
log "wrote $RESULTS, $SVG${MARKDOWN:+ and $MARKDOWN}"
