#!/usr/bin/env bash
# The seed lab, walked through with cnet: installs what is missing, builds, starts the
# cluster (`cnet up -d`) and runs the lab's steps, printing what a learner would look at.
#
# It works on this machine's real network stack, like Docker does: it creates the bridge
# `cnet0` and the lab's `vswitch01` bridge. To try it without touching the host, run it
# in a throwaway namespace: CNET_LAB_ISOLATED=1 ./scripts/lab.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${CNET_LAB_ISOLATED:-0}" == 1 && -z "${CNET_LAB_INSIDE:-}" ]]; then
    ./scripts/install-deps.sh
    cargo build --workspace --bins
    dir=$(mktemp -d /tmp/cnet-lab.XXXXXX)
    echo "running the lab in a throwaway namespace (state in $dir)"
    exec unshare --net --mount --pid --fork --mount-proc --propagation private \
        env CNET_LAB_INSIDE=1 CNET_RUNTIME_DIR="$dir/run" CNET_STATE_DIR="$dir/state" \
        sh -c 'ip link set lo up && ./scripts/lab.sh; status=$?; ./target/debug/cnet down >/dev/null; exit $status'
fi

if [[ -z "${CNET_LAB_INSIDE:-}" ]]; then
    ./scripts/install-deps.sh
    cargo build --workspace --bins
fi
export PATH="$PWD/target/debug:$PATH"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

if ! cnet ps >/dev/null 2>&1; then
    show cnet up -d
fi

# Start from a clean slate so the lab can be run again.
cnet rm -f centos1 centos2 >/dev/null 2>&1 || true
cnet network rm vswitch01 >/dev/null 2>&1 || true

step "1. The default bridge: cnet's docker0 is cnet0"
show cnet network ls
show ip -4 addr show cnet0

step "2. A user-defined bridge network"
show cnet network create --driver bridge --subnet 172.16.1.0/16 --ip-range 172.16.1.0/24 --gateway 172.16.1.1 vswitch01
show cnet run -d --name centos1 --hostname centos1 --network vswitch01
show cnet run -d --name centos2 --hostname centos2 --network vswitch01
show cnet network ls
show cnet ps
echo "centos1 gets 172.16.1.0 (the first address of the ip-range is a valid host of the /16), centos2 172.16.1.2 (.1 is the gateway):"
show cnet exec centos1 -- ip -4 -o addr show eth0
show cnet exec centos2 -- ip -4 -o addr show eth0
bridge=$(cnet network inspect vswitch01 | sed -n 's/.*"\(br-[0-9a-f]\{12\}\)".*/\1/p' | head -n1)
echo "the bridge holds the gateway address and one veth per container:"
show ip -4 addr show "$bridge"
show brctl show "$bridge"
show cnet exec centos1 -- ip route
show cnet exec centos1 -- ping -c2 172.16.1.2
show cnet exec centos1 -- hostname
echo "centos2's /etc/hosts lists only centos2 itself:"
show cnet exec centos2 -- cat /etc/hosts

step "Done"
echo "Look around with cnet ps / cnet inspect / cnet exec NAME -- CMD."
echo "Clean up with: cnet rm -f centos1 centos2; cnet network rm vswitch01; cnet down"
