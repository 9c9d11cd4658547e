#!/usr/bin/python3
"""Runs inside one system's throwaway namespaces (started there by benchlib.Worker with
nsenter) and attaches / detaches network namespaces the way that system does, timing
only the system's own commands. Driven by JSON lines on stdin, answers JSON lines:

    {"do": "prepare"}          one-time state the system needs (an anchor container or
                               namespace that stays attached, so the bridge stays up)
    {"do": "attach", "i": 7}   -> {"ok": true, "ms": 41.2, "parts": {...}}
    {"do": "detach", "i": 7}   -> the same
    {"do": "check", "i": 7}    is the attachment working: an address of the subnet,
                               and the bridge's gateway answers a ping from inside
    {"do": "floor"}            the cost of one trivial call of the same client (process
                               start + one round trip), to read the figures against
    {"do": "quit"}

Systems (the config file's "system"):
    cnet-connect    `cnet network connect bench anchor` / `network disconnect`: a
                    running container (on the default bridge) gets one more network
    cnet-run        `cnet run -d --name aI --network bench` / `cnet rm -f aI`: the whole
                    path (record, address, namespace, veth, DNS, files, process)
    netavark        `ip netns add` (untimed, reported as a part), then
                    `netavark setup /run/netns/X` with the options podman would pass on
                    stdin (network config from <dir>/networks/bench.json, as podman
                    writes it; an address chosen here, as podman's IPAM would);
                    teardown: `netavark teardown`, then `ip netns del` (untimed)
    cni             `ip netns add` (untimed), then the conflist's plugins (bridge with
                    host-local IPAM, then portmap) executed in order with CNI_COMMAND=ADD
                    and the previous result, as libcni does; DEL in reverse order
    docker-connect  `docker network connect bench anchor` / `docker network disconnect`
    docker-run      `docker run -d --name aI --network bench IMAGE sleep` / `docker rm -f`

The timed part of an operation is wall time around the system's commands only
(perf_counter_ns), each a fresh process as a user or an orchestrator would run it.
"""

import ipaddress
import json
import os
import subprocess
import sys
import time

CONFIG = json.load(open(sys.argv[1]))
SYSTEM = CONFIG["system"]
NETWORK = CONFIG.get("network", "bench")
SUBNET = ipaddress.ip_network(CONFIG["subnet"])
GATEWAY = str(SUBNET.network_address + 1)
PREFIX = CONFIG.get("name_prefix", "a")


class Failed(Exception):
    pass


def run(argv, stdin=None, env=None, timeout=120):
    proc = subprocess.run(
        argv, input=stdin, env=env, capture_output=True, timeout=timeout,
        text=isinstance(stdin, str) or stdin is None,
    )
    if proc.returncode != 0:
        err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode(errors="replace")
        raise Failed(f"{' '.join(argv[:4])}...: exit {proc.returncode}: {err.strip()[-400:]}")
    return proc.stdout


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter_ns()
    out = fn(*args, **kwargs)
    return (time.perf_counter_ns() - t0) / 1e6, out


PINGS = []   # how many pings the last check needed (a reply to the first is the rule)


def ping_from(netns_path, attempts=3):
    """The bridge's gateway answers a ping from inside the namespace: up to `attempts`
    pings, 2 s each, half a second apart (how many it took is reported)."""
    for attempt in range(1, attempts + 1):
        try:
            run(["nsenter", f"--net={netns_path}", "ping", "-c1", "-W2", "-q", GATEWAY], timeout=10)
            PINGS.append(attempt)
            return
        except Failed:
            if attempt == attempts:
                raise Failed(f"no ping reply from {GATEWAY} in {netns_path} after {attempts} tries")
            time.sleep(0.5)


def in_subnet(address: str) -> bool:
    try:
        return ipaddress.ip_address(address) in SUBNET
    except ValueError:
        return False


# --------------------------------------------------------------------------- cnet
CNET = [os.path.join(CONFIG.get("bin", ""), "cnet")]
CNET_ENV = dict(os.environ, **CONFIG.get("cnet_env", {}))


def cnet(*args):
    return run(CNET + list(args), env=CNET_ENV)


def cnet_check(name):
    record = json.loads(cnet("inspect", name))[0]
    address = record["NetworkSettings"]["Networks"].get(NETWORK, {}).get("IPAddress", "")
    if not in_subnet(address):
        raise Failed(f"{name} has no address in {SUBNET} on {NETWORK}: {address!r}")
    ping_from(f"/proc/{record['State']['Pid']}/ns/net")
    return address


class CnetConnect:
    def prepare(self):
        cnet("run", "-d", "--name", "anchor")

    def attach(self, i):
        return timed(cnet, "network", "connect", NETWORK, "anchor")[0], {}

    def detach(self, i):
        return timed(cnet, "network", "disconnect", NETWORK, "anchor")[0], {}

    def check(self, i):
        return cnet_check("anchor")

    def floor(self):
        return timed(cnet, "network", "inspect", NETWORK)[0]


class CnetRun:
    def prepare(self):
        pass

    def attach(self, i):
        return timed(cnet, "run", "-d", "--name", f"{PREFIX}{i}", "--network", NETWORK)[0], {}

    def detach(self, i):
        return timed(cnet, "rm", "-f", f"{PREFIX}{i}")[0], {}

    def check(self, i):
        return cnet_check(f"{PREFIX}{i}")

    def floor(self):
        return timed(cnet, "network", "inspect", NETWORK)[0]


# ------------------------------------------------------------------------- docker
DOCKER = ["docker", "-H", f"unix://{CONFIG.get('docker_sock', '')}"]


def docker(*args):
    return run(DOCKER + list(args))


def docker_check(name):
    pid = docker("inspect", "-f", "{{.State.Pid}}", name).strip()
    address = docker("inspect", "-f", "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}" % NETWORK, name).strip()
    if not in_subnet(address):
        raise Failed(f"{name} has no address in {SUBNET}: {address!r}")
    ping_from(f"/proc/{pid}/ns/net")
    return address


class DockerConnect:
    def prepare(self):
        docker("run", "-d", "--name", "anchor", CONFIG["docker_image"], "sleep", "86400")

    def attach(self, i):
        return timed(docker, "network", "connect", NETWORK, "anchor")[0], {}

    def detach(self, i):
        return timed(docker, "network", "disconnect", NETWORK, "anchor")[0], {}

    def check(self, i):
        return docker_check("anchor")

    def floor(self):
        return timed(docker, "network", "inspect", NETWORK)[0]


class DockerRun:
    def prepare(self):
        pass

    def attach(self, i):
        ms, _ = timed(docker, "run", "-d", "--name", f"{PREFIX}{i}", "--network", NETWORK,
                      CONFIG["docker_image"], "sleep", "86400")
        return ms, {}

    def detach(self, i):
        return timed(docker, "rm", "-f", f"{PREFIX}{i}")[0], {}

    def check(self, i):
        return docker_check(f"{PREFIX}{i}")

    def floor(self):
        return timed(docker, "network", "inspect", NETWORK)[0]


# ----------------------------------------------------------------- namespace-based
def address(i):
    """The i-th container address: .2 for the anchor (i = 0), then upwards."""
    return str(SUBNET.network_address + 2 + i)


class NetnsSystem:
    """A fresh namespace per attachment (`ip netns add`, as podman and CRI runtimes make
    one before calling the network plugin); its creation and deletion are parts of the
    result, not of the timed figure."""

    ns_prefix = "n"

    def netns(self, i):
        return f"{self.ns_prefix}{i}"

    def prepare(self):
        ms, parts = self.attach(0)

    def attach(self, i):
        add_ms, _ = timed(run, ["ip", "netns", "add", self.netns(i)])
        ms = self.setup(i, f"/run/netns/{self.netns(i)}")
        return ms, {"netns_add": round(add_ms, 3)}

    def detach(self, i):
        ms = self.teardown(i, f"/run/netns/{self.netns(i)}")
        del_ms, _ = timed(run, ["ip", "netns", "del", self.netns(i)])
        return ms, {"netns_del": round(del_ms, 3)}

    def check(self, i):
        path = f"/run/netns/{self.netns(i)}"
        shown = run(["ip", "-n", self.netns(i), "-4", "-o", "addr", "show", "dev", "eth0"])
        got = shown.split()[3].split("/")[0] if shown.split() else ""
        if not in_subnet(got):
            raise Failed(f"{self.netns(i)}: no address in {SUBNET}: {shown!r}")
        ping_from(path)
        return got


class Netavark(NetnsSystem):
    ns_prefix = "nv"

    def __init__(self):
        nv = CONFIG["netavark"]
        self.argv = [nv["binary"], "--config", nv["config_dir"], "--rootless", "false",
                     "--aardvark-binary", nv["aardvark"]]
        # The network's config as podman writes it (/etc/containers/networks/NAME.json).
        self.network = json.load(open(nv["network_file"]))

    def options(self, i):
        """What podman passes on netavark's stdin for one container on one network."""
        return json.dumps({
            "container_id": "%064x" % (0xC0FFEE0000 + i),
            "container_name": f"{PREFIX}{i}",
            "networks": {NETWORK: {"static_ips": [address(i)], "aliases": [f"{PREFIX}{i}"],
                                   "interface_name": "eth0"}},
            "network_info": {NETWORK: self.network},
        })

    def setup(self, i, path):
        return timed(run, self.argv + ["setup", path], stdin=self.options(i))[0]

    def teardown(self, i, path):
        return timed(run, self.argv + ["teardown", path], stdin=self.options(i))[0]

    def floor(self):
        return timed(run, [self.argv[0], "version"])[0]


class Cni(NetnsSystem):
    ns_prefix = "cni"

    def __init__(self):
        self.path = CONFIG["cni"]["plugin_dir"]
        self.conflist = json.load(open(CONFIG["cni"]["conflist"]))
        self.results = {}   # i -> the ADD result, handed to DEL as prevResult (libcni's cache)

    def invoke(self, plugin, command, i, netns, prev):
        conf = dict(plugin, cniVersion=self.conflist["cniVersion"], name=self.conflist["name"])
        if prev is not None:
            conf["prevResult"] = prev
        env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID="%064x" % (0xC0FFEE0000 + i),
                   CNI_NETNS=netns, CNI_IFNAME="eth0", CNI_PATH=self.path)
        out = run([os.path.join(self.path, plugin["type"])], stdin=json.dumps(conf), env=env)
        return json.loads(out) if out.strip() else None

    def setup(self, i, path):
        def chain():
            prev = None
            for plugin in self.conflist["plugins"]:
                prev = self.invoke(plugin, "ADD", i, path, prev)
            return prev

        ms, self.results[i] = timed(chain)
        return ms

    def teardown(self, i, path):
        def chain():
            prev = self.results.pop(i, None)
            for plugin in reversed(self.conflist["plugins"]):
                self.invoke(plugin, "DEL", i, path, prev)

        return timed(chain)[0]

    def floor(self):
        env = dict(os.environ, CNI_COMMAND="VERSION", CNI_PATH=self.path)
        return timed(run, [os.path.join(self.path, "bridge")], stdin="{}", env=env)[0]


SYSTEMS = {
    "cnet-connect": CnetConnect, "cnet-run": CnetRun, "netavark": Netavark, "cni": Cni,
    "docker-connect": DockerConnect, "docker-run": DockerRun,
}


def main():
    system = SYSTEMS[SYSTEM]()
    for line in sys.stdin:
        request = json.loads(line)
        what = request["do"]
        if what == "quit":
            print(json.dumps({"ok": True}), flush=True)
            return
        try:
            if what == "prepare":
                system.prepare()
                answer = {"ok": True}
            elif what in ("attach", "detach"):
                ms, parts = getattr(system, what)(request["i"])
                answer = {"ok": True, "ms": round(ms, 3), "parts": parts}
            elif what == "check":
                PINGS.clear()
                address = system.check(request["i"])
                answer = {"ok": True, "address": address, "pings": PINGS[-1] if PINGS else None}
            elif what == "floor":
                answer = {"ok": True, "ms": round(system.floor(), 3)}
            else:
                answer = {"ok": False, "error": f"unknown request {what!r}"}
        except (Failed, subprocess.TimeoutExpired, OSError, ValueError, KeyError, IndexError) as error:
            answer = {"ok": False, "error": str(error)}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
