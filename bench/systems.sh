#!/usr/bin/env bash
# The systems bench/attach.sh and bench/scale.sh put side by side, each set up in
# throwaway network + mount + pid namespaces of its own; sourced after bench/lib.sh, with
# REPO, WORK, BIN (cnet binaries), log and die defined.
#
#   cnet      the whole cluster (`cnet up -d`), a user network `bench` (10.210.0.0/16)
#   netavark  Debian's netavark (Podman's network backend), its own --config dir, a network
#             config file as podman writes it (networks/bench.json, 10.211.0.0/16, DNS on:
#             aardvark-dns), namespaces made with `ip netns add` on a private /run
#   cni       Debian's containernetworking-plugins (/usr/lib/cni): a conflist with bridge
#             (host-local IPAM, 10.212.0.0/16, ipMasq) and portmap, plugins executed
#             directly as libcni does
#   docker    Debian's docker.io: a private dockerd (own data, exec and socket dirs, vfs
#             storage), an image imported from a busybox-static rootfs, network `bench`
#             (10.213.0.0/16)
#
# Each setup_<ns> leaves $WORK/<ns>/config.json (what bench/nsworker.py needs: subnet,
# binaries, sockets) and $WORK/<ns>/version. NS[<ns>] is the host pid of the namespaces'
# init; killing it takes everything inside with it.
#
# Safety: nothing here touches the host's interfaces, routes or firewall: bridges, veths,
# iptables rules and daemons all live inside the namespaces. The one thing made outside
# them is a cpuacct cgroup of our own (bench_cgroup_enter), to tell the benchmark's CPU
# time from other work on the machine, and dockerd's container cgroups under it; both are
# removed by cleanup_systems.

declare -A NS=()
# The Python halves import each other from bench/: no __pycache__ left in the tree.
export PYTHONDONTWRITEBYTECODE=1
SYSTEMS_CGROUP=""      # cnetbench-<pid>: the benchmark's own cgroup name
NETAVARK=/usr/lib/podman/netavark
AARDVARK=/usr/lib/podman/aardvark-dns
CNI_DIR=/usr/lib/cni

# The benchmark's own CPU time, to tell it from other work on this shared machine: this
# shell (and so everything it starts) moves into cpuacct/cnetbench-<pid>/main; dockerd's
# containers go to cnetbench-<pid>/docker. BENCH_CGROUP (read by benchlib.CpuWindow) is
# the parent, whose usage counts both. Without a cgroup v1 cpuacct hierarchy nothing is
# made and "other work" is not measured.
bench_cgroup_enter() {
    local root=/sys/fs/cgroup/cpuacct
    [[ -w $root/cgroup.procs ]] || { log "no cpuacct cgroup: other work on the machine is not measured"; return 0; }
    SYSTEMS_CGROUP=cnetbench-$$
    mkdir -p "$root/$SYSTEMS_CGROUP/main" || { SYSTEMS_CGROUP=""; return 0; }
    echo $$ >"$root/$SYSTEMS_CGROUP/main/cgroup.procs"
    export BENCH_CGROUP=$root/$SYSTEMS_CGROUP
}

cnet_in() {   # cnet_in NS CMD...: the cnet CLI of the cluster in namespace NS
    local ns=$1
    shift
    nsx "${NS[$ns]}" 300 env CNET_RUNTIME_DIR="$WORK/$ns/run" CNET_STATE_DIR="$WORK/$ns/state" \
        CNET_DNS__RESOLV_CONF="$WORK/$ns/resolv.conf" \
        CNET_HOSTS__HOST_RESOLV_CONF="$WORK/$ns/resolv.conf" "$BIN/cnet" "$@"
}

docker_in() {
    nsx "${NS[docker]}" 300 docker -H "unix://$WORK/docker/docker.sock" "$@"
}

# cnet: the cluster and a user network with a /16 (room for 1,000 containers and more).
setup_cnet() {
    local dir=$WORK/cnet
    # Upstream for names the embedded DNS does not know, and the "host's" resolv.conf
    # that containers on the default bridge copy: never the real host's.
    echo "nameserver 127.0.0.1" >"$dir/resolv.conf"
    nsx "${NS[cnet]}" 10 ip link set lo up
    cnet_in cnet up -d >/dev/null
    cnet_in cnet network create --subnet 10.210.0.0/16 bench >/dev/null
    cat >"$dir/config.json" <<EOF
{"work": "$WORK", "subnet": "10.210.0.0/16", "bin": "$BIN",
 "cnet_env": {"CNET_RUNTIME_DIR": "$dir/run", "CNET_STATE_DIR": "$dir/state",
              "CNET_DNS__RESOLV_CONF": "$dir/resolv.conf",
              "CNET_HOSTS__HOST_RESOLV_CONF": "$dir/resolv.conf"}}
EOF
    echo "cnet $("$BIN/cnet" --version | awk '{print $2}') (${PROFILE/given (CNET_BIN_DIR)/release binaries from CNET_BIN_DIR}, commit $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown))" >"$dir/version"
}

# netavark: its --config dir (aardvark-dns's config lands there) and the network's
# config as podman writes it for `podman network create --subnet 10.211.0.0/16 bench`
# (/etc/containers/networks/bench.json; DNS on, as for every network podman creates).
setup_netavark() {
    local dir=$WORK/netavark
    mkdir -p "$dir/config" "$dir/networks"
    # `ip netns add` keeps its mounts in /run/netns: a private tmpfs keeps them off the host.
    nsx "${NS[netavark]}" 10 mount -t tmpfs tmpfs /run
    nsx "${NS[netavark]}" 10 ip link set lo up
    cat >"$dir/networks/bench.json" <<EOF
{
     "name": "bench",
     "id": "$(printf 'be%.0s' {1..32})",
     "driver": "bridge",
     "network_interface": "podman1",
     "created": "$(date -u +%Y-%m-%dT%H:%M:%S.000000000Z)",
     "subnets": [
          {
               "subnet": "10.211.0.0/16",
               "gateway": "10.211.0.1"
          }
     ],
     "ipv6_enabled": false,
     "internal": false,
     "dns_enabled": true,
     "ipam_options": {
          "driver": "host-local"
     }
}
EOF
    cat >"$dir/config.json" <<EOF
{"work": "$WORK", "subnet": "10.211.0.0/16",
 "netavark": {"binary": "$NETAVARK", "aardvark": "$AARDVARK", "config_dir": "$dir/config",
              "network_file": "$dir/networks/bench.json"}}
EOF
    echo "$("$NETAVARK" --version) + $("$AARDVARK" --version)" >"$dir/version"
}

# CNI: bridge + host-local + portmap chained in a conflist (what podman 3 and CRI runtimes
# wrote), host-local's leases in a directory of ours.
setup_cni() {
    local dir=$WORK/cni
    mkdir -p "$dir/net.d" "$dir/ipam"
    nsx "${NS[cni]}" 10 mount -t tmpfs tmpfs /run
    nsx "${NS[cni]}" 10 ip link set lo up
    cat >"$dir/net.d/10-bench.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "bench",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni-bench",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/ipam",
        "routes": [{"dst": "0.0.0.0/0"}],
        "ranges": [[{"subnet": "10.212.0.0/16", "gateway": "10.212.0.1"}]]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
    cat >"$dir/config.json" <<EOF
{"work": "$WORK", "subnet": "10.212.0.0/16",
 "cni": {"plugin_dir": "$CNI_DIR", "conflist": "$dir/net.d/10-bench.conflist"}}
EOF
    echo "CNI plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins) (bridge, host-local, portmap)" >"$dir/version"
}

# Docker: dockerd and its containerd inside the namespace, every directory its own
# (short paths: dockerd puts unix sockets under --exec-root), iptables on as by default
# (its rules land in the namespace). No registry can be reached: the image is a
# busybox-static rootfs made here and `docker import`ed.
setup_docker() {
    local ns=${NS[docker]} dir=$WORK/docker parent=""
    [[ -n $SYSTEMS_CGROUP ]] && parent=/$SYSTEMS_CGROUP/docker || parent=/cnetbench-$$-docker
    mkdir -p "$dir/rootfs/bin"
    nsx "$ns" 10 mount -t tmpfs tmpfs /run
    nsx "$ns" 10 ip link set lo up
    nsd "$ns" "$dir/dockerd.log" dockerd --data-root "$dir/data" --exec-root "$dir/exec" \
        --pidfile "$dir/docker.pid" -H "unix://$dir/docker.sock" --storage-driver vfs \
        --cgroup-parent "$parent" --log-level warn
    wait_for 60 docker_in version || { tail -20 "$dir/dockerd.log"; return 1; }
    cp /bin/busybox "$dir/rootfs/bin/busybox"
    for applet in sh sleep; do ln -s busybox "$dir/rootfs/bin/$applet"; done
    tar -C "$dir/rootfs" -c . | docker_in import - cnet-bench/busybox >/dev/null
    docker_in network create --subnet 10.213.0.0/16 bench >/dev/null
    cat >"$dir/config.json" <<EOF
{"work": "$WORK", "subnet": "10.213.0.0/16", "docker_sock": "$dir/docker.sock",
 "docker_image": "cnet-bench/busybox"}
EOF
    docker_in version --format 'Docker Engine {{.Server.Version}}' >"$dir/version"
}

# start_systems NS...: a namespace and a setup per name; a failed setup is logged and
# leaves $WORK/<ns>/error (the run goes on without it).
start_systems() {
    local ns
    for ns in "$@"; do
        NS[$ns]=$(new_ns)
        mkdir -p "$WORK/$ns"
        log "setting up $ns (namespace init pid ${NS[$ns]})"
        (set -e; "setup_$ns") >"$WORK/$ns/setup.log" 2>&1 &
        if ! wait $!; then
            tail -15 "$WORK/$ns/setup.log" >"$WORK/$ns/error"
            log "$ns: setup failed:"
            cat "$WORK/$ns/error" >&2
            continue
        fi
        echo "${NS[$ns]}" >"$WORK/$ns/ns_pid"
    done
}

# prepare_systems: the peers' packages and tools, cnet's binaries, the benchmark's cgroup.
prepare_systems() {
    install_packages netavark aardvark-dns containernetworking-plugins docker.io busybox-static \
        iproute2 iptables iputils-ping util-linux procps python3 jq
    local tool
    for tool in nsenter unshare ping jq /usr/bin/python3 "$NETAVARK" "$CNI_DIR/bridge"; do
        command -v "$tool" >/dev/null || die "$tool is missing and could not be installed"
    done
    build_cnet
    log "cnet binaries: $BIN ($PROFILE)"
    bench_cgroup_enter
}

# start_systems_for "SYSTEM...": the namespaces the systems need (cnet-connect and
# cnet-run share one cluster, docker-connect and docker-run one dockerd), started.
start_systems_for() {
    local system ns needed=()
    for system in $1; do
        ns=${system%%-*}
        [[ " ${needed[*]} " == *" $ns "* ]] || needed+=("$ns")
    done
    start_systems "${needed[@]}"
}

# write_machine_facts FILE: what the results say about the machine.
write_machine_facts() {
    {
        echo "kernel=$(uname -r)"
        echo "cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
        echo "cores=$(nproc)"
        echo "memory_gib=$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)"
        echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    } >"$1"
}

# Everything down and gone: containers and dockerd politely (so runc removes its
# cgroups), the cnet cluster, then each namespace's init; then our cgroups and WORK.
cleanup_systems() {
    set +e
    if [[ -n ${NS[docker]:-} && -e /proc/${NS[docker]} ]]; then
        docker_in ps -aq 2>/dev/null | xargs -r -n 50 timeout 300 nsenter --target "${NS[docker]}" \
            --net --mount --pid -- docker -H "unix://$WORK/docker/docker.sock" rm -f >/dev/null 2>&1
        nsx "${NS[docker]}" 20 sh -c "kill \$(cat $WORK/docker/docker.pid) 2>/dev/null" >/dev/null 2>&1
        for _ in $(seq 100); do pgrep -f "$WORK/docker/docker.pid" >/dev/null || break; sleep 0.2; done
    fi
    for ns in "${!NS[@]}"; do
        [[ $ns == cnet* && -e /proc/${NS[$ns]} ]] && cnet_in "$ns" down >/dev/null 2>&1
        kill -KILL "${NS[$ns]}" 2>/dev/null
    done
    for ns in "${!NS[@]}"; do
        for _ in $(seq 200); do [[ -e /proc/${NS[$ns]} ]] || break; sleep 0.1; done
    done
    sleep 0.5
    if [[ -n $SYSTEMS_CGROUP ]]; then
        echo $$ >/sys/fs/cgroup/cpuacct/cgroup.procs
    fi
    local name=${SYSTEMS_CGROUP:-cnetbench-$$}
    for _ in 1 2 3; do
        find /sys/fs/cgroup -maxdepth 6 -depth -type d -name "$name*" -exec rmdir {} \; 2>/dev/null
        find /sys/fs/cgroup -maxdepth 6 -depth -type d -path "*/$name*" -exec rmdir {} \; 2>/dev/null
        [[ -z $(find /sys/fs/cgroup -maxdepth 6 -type d -name "$name*" 2>/dev/null) ]] && break
        sleep 1
    done
    rm -rf "$WORK"
    log "left on the host: netns [$(ip netns list | tr '\n' ' ')]," \
        "veths $(ip -o link show type veth | wc -l)," \
        "cgroups $(find /sys/fs/cgroup -maxdepth 6 -type d -name "$name*" 2>/dev/null | wc -l)"
}
