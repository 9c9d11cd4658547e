#!/usr/bin/env bash
# Probe behind a finding of bench/attach.sh: what it costs the kernel to make a veth pair
# whose one end sits in a container's namespace, done the way cnet-bridge does it
# (create both ends in the host namespace, then move one: RTM_NEWLINK, then RTM_SETLINK
# with IFLA_NET_NS_FD) against creating that end in the namespace directly (one
# RTM_NEWLINK whose peer carries the namespace, as netavark and the CNI bridge plugin
# do), and deleting the pair from either side. One command, as root:
#
#     bench/veth-move.sh            # ROUNDS=5 COUNT=20: 100 pairs per way, ~1 minute
#
# Everything runs in a throwaway network + mount + pid namespace (namespaces made with
# `ip netns add` on a private /run inside it); `ip -batch` runs COUNT operations per
# process so that process start-up stays out of the figure. Prints ms per pair.
set -euo pipefail
ROUNDS=${ROUNDS:-5} COUNT=${COUNT:-20}
REPO=$(cd "$(dirname "$0")/.." && pwd)
log() { printf '[veth-move] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
[[ $(id -u) == 0 ]] || die "run as root"
NS=$(new_ns)
trap 'kill -KILL $NS 2>/dev/null' EXIT
nsenter --target "$NS" --net --mount --pid -- /bin/bash -s "$ROUNDS" "$COUNT" <<'EOF'
set -euo pipefail
rounds=$1 count=$2
mount -t tmpfs tmpfs /run
ip link set lo up
ms() { echo "$(( ($2 - $1) / 1000 ))" ; }   # µs
declare -A total=()
for ((r = 1; r <= rounds; r++)); do
    : >/tmp/move.batch; : >/tmp/direct.batch; : >/tmp/delhost.batch; : >/tmp/delinside.batch
    for ((i = 1; i <= count; i++)); do
        ip netns add m$r.$i; ip netns add d$r.$i
        echo "link add hm$i type veth peer name em$i" >>/tmp/move.batch
        echo "link set em$i netns m$r.$i" >>/tmp/move.batch
        echo "link add hd$i type veth peer name ed$i netns d$r.$i" >>/tmp/direct.batch
        echo "link del hm$i" >>/tmp/delhost.batch
    done
    # Alternate which way goes first each round.
    for way in $( ((r % 2)) && echo "move direct" || echo "direct move"); do
        t0=$(date +%s%N); ip -batch /tmp/$way.batch; t1=$(date +%s%N)
        total[$way]=$(( ${total[$way]:-0} + $(ms "$t0" "$t1") ))
    done
    t0=$(date +%s%N); ip -batch /tmp/delhost.batch; t1=$(date +%s%N)
    total[delhost]=$(( ${total[delhost]:-0} + $(ms "$t0" "$t1") ))
    t0=$(date +%s%N)
    for ((i = 1; i <= count; i++)); do ip -n d$r.$i link del ed$i 2>/dev/null || true; done
    t1=$(date +%s%N)
    total[delinside]=$(( ${total[delinside]:-0} + $(ms "$t0" "$t1") ))
    for ((i = 1; i <= count; i++)); do ip netns del m$r.$i; ip netns del d$r.$i; done
done
n=$((rounds * count))
printf 'create in host + move peer into namespace (cnet-bridge): %d.%02d ms per pair\n' $((total[move] / n / 1000)) $((total[move] / n / 10 % 100))
printf 'create with the peer in the namespace (netavark, CNI):    %d.%02d ms per pair\n' $((total[direct] / n / 1000)) $((total[direct] / n / 10 % 100))
printf 'delete from the host end (cnet-bridge):                   %d.%02d ms per pair\n' $((total[delhost] / n / 1000)) $((total[delhost] / n / 10 % 100))
printf 'delete from inside the namespace (an ip process per pair): %d.%02d ms per pair\n' $((total[delinside] / n / 1000)) $((total[delinside] / n / 10 % 100))
EOF
