"""What the Python halves of bench/attach.sh, bench/scale.sh and bench/control.sh share:
talking to a worker inside a system's namespaces, CPU accounting on a shared machine,
memory of processes, statistics, and rewriting one section of BENCHMARKS.md.

Standard library only (Debian's python3): the scripts run it as /usr/bin/python3.
"""

import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent


def log(prefix: str, *words) -> None:
    print(f"[{prefix}] " + " ".join(str(w) for w in words), file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ statistics
def percentile(values, fraction: float):
    """Nearest rank: the smallest value with at least `fraction` of the values <= it."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    rank = max(1, math.ceil(len(ordered) * fraction))
    return ordered[min(rank, len(ordered)) - 1]


def summary(values) -> dict:
    """p50/p90 (nearest rank), min, max, mean and the interquartile spread of `values`."""
    values = [v for v in values if v is not None]
    if not values:
        return {"n": 0}
    p25, p75 = percentile(values, 0.25), percentile(values, 0.75)
    return {
        "n": len(values),
        "p50": round(percentile(values, 0.50), 2),
        "p90": round(percentile(values, 0.90), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "mean": round(statistics.fmean(values), 2),
        "iqr": round(p75 - p25, 2),
    }


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ------------------------------------------------------------------ CPU accounting
def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, every core (as bench/lib.sh counts)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]
    return busy, busy + fields[3] + fields[4]


def busy_next_second() -> float:
    b1, t1 = machine_ticks()
    time.sleep(1)
    b2, t2 = machine_ticks()
    return 100.0 * (b2 - b1) / max(1, t2 - t1)


def wait_quiet(busy_max: float, wait_max: float) -> float:
    """Waits (at most wait_max s) until the machine was under busy_max % busy for a
    second; returns the last busy % seen (bench/lib.sh's wait_quiet, in Python)."""
    deadline = time.monotonic() + wait_max
    while True:
        busy = busy_next_second()
        if busy < busy_max or time.monotonic() >= deadline:
            return round(busy, 1)


class CpuWindow:
    """The cores' worth of CPU that other work on the machine took while a block ran:
    machine busy time minus what the benchmark's own cgroup (BENCH_CGROUP: a cpuacct
    directory holding the script and everything it started) used."""

    HZ = os.sysconf("SC_CLK_TCK")
    CORES = os.cpu_count() or 1

    def __init__(self):
        self.cgroup = os.environ.get("BENCH_CGROUP") or None

    def _ours_ns(self):
        if not self.cgroup:
            return None
        try:
            return int(Path(self.cgroup, "cpuacct.usage").read_text())
        except OSError:
            return None

    def __enter__(self):
        self.t0 = time.monotonic()
        self.m0 = machine_ticks()
        self.o0 = self._ours_ns()
        return self

    def __exit__(self, *exc):
        m1, o1 = machine_ticks(), self._ours_ns()
        wall = time.monotonic() - self.t0
        busy = (m1[0] - self.m0[0]) / self.HZ
        self.busy_cores = round(busy / wall, 2) if wall else None
        if self.o0 is not None and o1 is not None and wall:
            ours = (o1 - self.o0) / 1e9
            self.ours_cores = round(ours / wall, 2)
            self.other_cores = round(max(0.0, busy - ours) / wall, 2)
        else:
            self.ours_cores = self.other_cores = None
        self.seconds = round(wall, 3)
        return False

    def facts(self) -> dict:
        return {
            "seconds": self.seconds,
            "machine_busy_cores": self.busy_cores,
            "bench_cores": self.ours_cores,
            "other_cores": self.other_cores,
        }


# ---------------------------------------------------------------------- processes
def pid_namespace(pid) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def processes_in(ns_init_pid) -> list[tuple[int, str]]:
    """(host pid, command name) of the live processes in the pid namespace of
    ns_init_pid."""
    want = pid_namespace(ns_init_pid)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") != want:
                continue
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state = stat[stat.rindex(")") + 2]
        if state != "Z":
            found.append((int(entry), name))
    return found


def memory_kib(pid) -> dict | None:
    """RSS and PSS of one process, KiB (smaps_rollup)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            out[key.lower()] = int(rest.split()[0])
    return out


def parent_pid(pid) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def children_of(parents) -> list[tuple[int, str]]:
    """(host pid, command name) of the live processes whose parent is in `parents`, in
    any pid namespace (Docker's containers have pid namespaces of their own)."""
    parents = set(parents)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and parent_pid(entry) in parents:
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            found.append((int(entry), stat[stat.index("(") + 1 : stat.rindex(")")]))
    return found


def memory_by_name(ns_init_pid, names, processes=None) -> dict:
    """{name: {"rss": KiB, "pss": KiB, "count": n}} summed over the processes of the
    namespace (or the given (pid, name) list) whose command name is in `names` (every
    name if names is None). The namespace's own init is never counted."""
    out = {}
    for pid, name in processes if processes is not None else processes_in(ns_init_pid):
        if (names is not None and name not in names) or pid == ns_init_pid:
            continue
        mem = memory_kib(pid)
        if mem is None:
            continue
        slot = out.setdefault(name, {"rss": 0, "pss": 0, "count": 0})
        slot["rss"] += mem.get("rss", 0)
        slot["pss"] += mem.get("pss", 0)
        slot["count"] += 1
    return out


# ------------------------------------------------------------------------- workers
class Worker:
    """bench/nsworker.py running inside a system's namespaces (network, mount, pid of
    the namespace whose init is ns_pid), driven over its stdin/stdout with JSON lines."""

    def __init__(self, system: str, ns_pid: int, config: dict):
        self.system = system
        config_path = Path(config["work"]) / f"{system}.worker.json"
        config_path.write_text(json.dumps(dict(config, system=system)))
        self.proc = subprocess.Popen(
            ["nsenter", "--target", str(ns_pid), "--net", "--mount", "--pid", "--",
             "/usr/bin/python3", str(BENCH / "nsworker.py"), str(config_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )

    def call(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.system}: the worker died")
        return json.loads(line)

    def close(self):
        try:
            self.call(do="quit")
        except (RuntimeError, OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -------------------------------------------------------------------- the report
def read_facts(path) -> dict:
    facts = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition("=")
        if key:
            facts[key] = value
    return facts


def replace_section(markdown: str, name: str, body: str) -> bool:
    """Rewrites what lies between <!-- NAME-results:begin --> and <!-- NAME-results:end
    --> in the file `markdown` (re-read right before writing: others edit the file
    too). Returns False, changing nothing, when the markers are missing."""
    if not markdown:
        return False
    begin, end = f"<!-- {name}-results:begin -->", f"<!-- {name}-results:end -->"
    path = Path(markdown)
    text = path.read_text()
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(head + begin + "\n" + body.rstrip("\n") + "\n" + end + tail)
    return True


def fmt(value, digits=1) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b
