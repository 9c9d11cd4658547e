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
cnet rm -f centos1 centos2 centos3 centos4 centos5 web centos6 centos7 filler >/dev/null 2>&1 || true
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
echo "they reach each other by name, though nobody edited a hosts file:"
show cnet exec centos2 -- ping -c2 centos1
show cnet exec centos1 -- hostname
echo "centos2's /etc/hosts lists only centos2 itself; its resolver is the embedded DNS:"
show cnet exec centos2 -- cat /etc/hosts
show cnet exec centos2 -- cat /etc/resolv.conf

step "3. Host mode: no namespace of its own"
show cnet run -d --name centos3 --hostname centos3 --network host
show cnet exec centos3 -- ip -o -4 addr show

step "4. Container mode: centos4 shares centos1's namespace"
show cnet run -d --name centos4 --network container:centos1
show cnet exec centos4 -- ip -4 -o addr show eth0
echo "nothing new on the bridge:"
show brctl show "$bridge"

step "5. None: only loopback"
show cnet run -d --name centos5 --network none
show cnet exec centos5 -- ip -o addr show

step "6. Publishing a port: -p 8080:80"
www="${CNET_STATE_DIR:-/var/lib/cnet}/lab-www"; mkdir -p "$www"
echo "hello from web" > "$www/index.html"
show cnet run -d --name web --network vswitch01 -p 8080:80 -- python3 -m http.server 80 --directory "$www"
sleep 1
show cnet port web
show curl -s http://127.0.0.1:8080/
echo "one proxy task in cnet-nat, not a process per port; the NAT rules in cnet's own chains:"
show sh -c "iptables-save -t nat | grep -E '^-A CNET|MASQUERADE' | head -n 12"

step "7. Links: centos7 links to centos6 and follows its restarts"
show cnet run -d --name centos6 --hostname centos6
show cnet run -d --name centos7 --hostname centos7 --link centos6
show cnet exec centos7 -- tail -n 2 /etc/hosts
show cnet stop centos6
show cnet run -d --name filler
show cnet start centos6
echo "centos6 came back with a new address, and centos7's /etc/hosts followed:"
show cnet exec centos7 -- tail -n 2 /etc/hosts
show cnet exec centos7 -- ping -c1 centos6
cnet rm -f filler >/dev/null

step "Done"
echo "Look around with cnet ps / cnet inspect NAME / cnet exec NAME -- CMD."
echo "Clean up with: cnet rm -f centos1 centos2 centos3 centos4 centos5 web centos6 centos7; cnet network rm vswitch01; cnet down"
