#!/usr/bin/python3
"""The measuring half of bench/control.sh, run by it inside the cluster's namespaces
(the cnet CLI's environment and the knobs come from there):

1. latency of `cnet run -d` / `cnet rm -f` and `cnet network connect` / `disconnect`, end
   to end (the CLI's wall time), interleaved rounds, and where that time goes, from the
   traces the services export to bench/otlp_receiver.py: each request's trace is cut
   into the time each service spends in its own spans (a span's duration minus its
   children's), plus the gateway's named steps, plus the client (CLI wall time minus the
   gateway's request span: process start, connection, transport);
2. restart and reconcile: the services are killed (SIGKILL, supervisor first) and
   started again with `cnet up -d`; timed until each service answers SERVING on
   grpc.health.v1, until `cnet ps -q` lists every container again, and until
   `cnet system check` exits 0 (no drift); with no container, then with RESTART_N.
"""

import datetime
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
import plot  # noqa: E402
from benchlib import fmt, median, summary  # noqa: E402

WORK = Path(os.environ["WORK"])
BIN = os.environ["BIN"]
RUNTIME = Path(os.environ["CNET_RUNTIME_DIR"])
SPANS = Path(os.environ["SPANS"])
ROUNDS, REPS = int(os.environ["ROUNDS"]), int(os.environ["REPS"])
RESTART_N, RESTARTS = int(os.environ["RESTART_N"]), int(os.environ["RESTARTS"])
QUIET_BUSY, QUIET_WAIT = float(os.environ["QUIET_BUSY"]), float(os.environ["QUIET_WAIT"])
OTHER_MAX = float(os.environ["OTHER_MAX"])
RESULTS, SVG, RESTART_SVG = os.environ["RESULTS"], os.environ["SVG"], os.environ["RESTART_SVG"]
MARKDOWN = os.environ.get("MARKDOWN", "")
SERVICES = ["ipam", "bridge", "nat", "dns", "hosts", "gateway"]
# The environment without the exporter: restarts run untraced (the figures are then
# those of a cluster as deployed without a collector).
UNTRACED = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}


def log(*words):
    benchlib.log("control-bench", *words)


def cnet(*args, env=None, check=True, timeout=120):
    proc = subprocess.run([f"{BIN}/cnet", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"cnet {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return proc


def timed_cnet(*args):
    wall0, t0 = time.time_ns(), time.perf_counter_ns()
    cnet(*args)
    return {"ms": (time.perf_counter_ns() - t0) / 1e6, "wall": [wall0, time.time_ns()]}


# ---------------------------------------------------------------------- latency
OPS = {
    "run": lambda i: ("run", "-d", "--name", f"t{i}", "--network", "bench"),
    "rm": lambda i: ("rm", "-f", f"t{i}"),
    "connect": lambda i: ("network", "connect", "bench", "anchor"),
    "disconnect": lambda i: ("network", "disconnect", "bench", "anchor"),
}
PAIRS = {"run/rm": ("run", "rm"), "connect/disconnect": ("connect", "disconnect")}


def latency(rounds, first_i=0, anchor=True):
    samples = {op: [] for op in OPS}
    batches = []
    if anchor:
        cnet("run", "-d", "--name", "anchor")
    i = first_i
    for pair in PAIRS.values():            # warm-up, not recorded
        for _ in range(3):
            i += 1
            for op in pair:
                cnet(*OPS[op](i))
    order = list(PAIRS)
    for r in range(rounds):
        for name in order[r % 2:] + order[: r % 2]:
            busy = benchlib.wait_quiet(QUIET_BUSY, QUIET_WAIT)
            with benchlib.CpuWindow() as window:
                for _ in range(REPS):
                    i += 1
                    for op in PAIRS[name]:
                        samples[op].append(timed_cnet(*OPS[op](i)))
            batches.append(dict(window.facts(), round=r + 1, pair=name, busy_before_pct=busy))
        log(f"round {r + 1}: run p50 {median([s['ms'] for s in samples['run']]):.1f} ms, "
            f"connect p50 {median([s['ms'] for s in samples['connect']]):.1f} ms")
    return samples, batches


def load_spans():
    spans = []
    if SPANS.exists():
        for line in SPANS.read_text().splitlines():
            try:
                spans.append(json.loads(line))
            except ValueError:
                pass
    return spans


def self_times(trace):
    """{span id: its own time in ms}: duration minus the union of its children's
    intervals (clipped to it), so that the parts add up to the root's duration."""
    children = {}
    for s in trace:
        children.setdefault(s["parent"], []).append(s)
    out = {}
    for s in trace:
        intervals = sorted((max(c["start"], s["start"]), min(c["end"], s["end"]))
                           for c in children.get(s["span"], []))
        covered, cur_start, cur_end = 0, None, None
        for a, b in intervals:
            if b <= a:
                continue
            if cur_end is None or a > cur_end:
                if cur_end is not None:
                    covered += cur_end - cur_start
                cur_start, cur_end = a, b
            else:
                cur_end = max(cur_end, b)
        if cur_end is not None:
            covered += cur_end - cur_start
        out[s["span"]] = max(0, s["end"] - s["start"] - covered) / 1e6
    return out


def subtree(trace, root):
    """The spans of `trace` under `root` (itself included)."""
    children = {}
    for s in trace:
        children.setdefault(s["parent"], []).append(s)
    out, todo = [], [root]
    while todo:
        s = todo.pop()
        out.append(s)
        todo.extend(children.get(s["span"], []))
    return out


def breakdown(samples, spans):
    """Per operation: the CLI's wall time, the gateway's request span, the client part,
    the time in each service (own span time), and each named span's duration."""
    by_trace = {}
    for s in spans:
        by_trace.setdefault(s["trace"], []).append(s)
    # The gateway's request span: the trace's root, or the child of the CLI's root span
    # (`cnet <command>`), which is left out: the client part is measured by wall time.
    cli_spans = {s["span"] for s in spans if s["service"] == "cnet-cli"}
    roots = [s for s in spans if s["service"] == "cnet-gateway" and "/" in s["name"]
             and (not s["parent"] or s["parent"] in cli_spans)]
    roots.sort(key=lambda s: s["start"])
    out = {}
    for op, runs in samples.items():
        per_run = []
        for sample in runs:
            lo, hi = sample["wall"]
            root = next((r for r in roots if lo <= r["start"] <= hi), None)
            if root is None:
                continue
            trace = subtree(by_trace[root["trace"]], root)
            own = self_times(trace)
            services = {}
            for s in trace:
                services[s["service"]] = services.get(s["service"], 0) + own[s["span"]]
            named = {}
            for s in trace:
                key = f"{s['service'].removeprefix('cnet-')}: {s['name']}"
                named[key] = named.get(key, 0) + (s["end"] - s["start"]) / 1e6
            root_ms = (root["end"] - root["start"]) / 1e6
            per_run.append({"cli_ms": sample["ms"], "root_ms": root_ms,
                            "client_ms": max(0.0, sample["ms"] - root_ms),
                            "services_ms": services, "spans_ms": named, "root": root["name"],
                            "spans": len(trace)})
        services = sorted({k for r in per_run for k in r["services_ms"]})
        names = sorted({k for r in per_run for k in r["spans_ms"]})
        out[op] = {
            "cli_ms": summary([s["ms"] for s in runs]),
            "traced_runs": len(per_run),
            "root": per_run[0]["root"] if per_run else None,
            "root_ms": summary([r["root_ms"] for r in per_run]),
            "client_ms": summary([r["client_ms"] for r in per_run]),
            "services_ms": {k: summary([r["services_ms"].get(k, 0.0) for r in per_run]) for k in services},
            "spans_ms": {k: summary([r["spans_ms"].get(k, 0.0) for r in per_run]) for k in names},
            "spans_per_trace": median([r["spans"] for r in per_run]),
        }
    return out


# ---------------------------------------------------------------------- restarts
def health(service, timeout=0.3):
    """Whether SERVICE answers SERVING on grpc.health.v1 (overall status)."""
    target = f"unix://{RUNTIME / (service + '.sock')}"
    options = [("grpc.initial_reconnect_backoff_ms", 10), ("grpc.min_reconnect_backoff_ms", 10),
               ("grpc.max_reconnect_backoff_ms", 50)]
    try:
        with grpc.insecure_channel(target, options=options) as channel:
            check = channel.unary_unary("/grpc.health.v1.Health/Check")
            answer = check(b"", timeout=timeout)   # HealthCheckRequest{service: ""}
            return answer == b"\x08\x01"              # status: SERVING
    except grpc.RpcError:
        return False


def stat_of(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    rest = stat[stat.rindex(")") + 2 :].split()
    return name, rest[0], int(rest[1])   # name, state, ppid


def alive(pid):
    st = stat_of(pid)
    return st is not None and st[1] != "Z"


def kill_cluster():
    """SIGKILL the supervisor (so that it restarts nothing), then every service it ran."""
    supervisor = int((RUNTIME / "cnet-up.pid").read_text().strip())
    services = [int(p) for p in os.listdir("/proc") if p.isdigit()
                and (st := stat_of(p)) and st[2] == supervisor and st[0].startswith("cnet-")]
    os.kill(supervisor, signal.SIGKILL)
    for pid in services:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(alive(p) for p in [supervisor, *services]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(services)


def running_count():
    proc = cnet("ps", "-q", env=UNTRACED, check=False, timeout=30)
    return len(proc.stdout.split()) if proc.returncode == 0 else None


def restart(expected, how):
    """Stop the cluster (`kill`: SIGKILL; `down`: cnet down) and time `cnet up -d` until
    every service is SERVING, `cnet ps` lists the EXPECTED running containers and
    `cnet system check` is clean."""
    if how == "kill":
        kill_cluster()
        stop_ms = None
    else:
        t = time.perf_counter()
        cnet("down", env=UNTRACED)
        stop_ms = (time.perf_counter() - t) * 1e3
    t0 = time.perf_counter()
    up = subprocess.Popen([f"{BIN}/cnet", "up", "-d"], env=UNTRACED, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    marks, serving = {}, {}
    ms = lambda: round((time.perf_counter() - t0) * 1e3, 1)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if "up_returned" not in marks and up.poll() is not None:
            marks["up_returned"] = ms()
            if up.returncode != 0:
                raise RuntimeError(f"cnet up -d failed: {up.stderr.read()[-500:]}")
        for service in SERVICES:
            if service not in serving and health(service):
                serving[service] = ms()
        if "gateway" in serving:
            if "ps_lists_all" not in marks:
                count = running_count()
                if count is not None and "ps_answers" not in marks:
                    marks["ps_answers"] = ms()
                if count == expected:
                    marks["ps_lists_all"] = ms()
            if "check_clean" not in marks and cnet("system", "check", env=UNTRACED, check=False,
                                                     timeout=120).returncode == 0:
                marks["check_clean"] = ms()
        if {"up_returned", "ps_lists_all", "check_clean"} <= marks.keys() and len(serving) == len(SERVICES):
            break
        time.sleep(0.02)
    else:
        raise RuntimeError(f"restart with {expected} containers did not settle: {marks} {serving}")
    marks["all_serving"] = max(serving.values())
    return {"how": how, "containers": expected, "stop_ms": stop_ms, "marks_ms": marks,
            "serving_ms": serving}


def traced_at_scale():
    """The same latency rounds (fewer) with RESTART_N containers running: the cluster is
    restarted with the exporter once more, reconciled, then measured."""
    kill_cluster()
    cnet("up", "-d")
    deadline = time.monotonic() + 600
    while cnet("system", "check", check=False).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    containers = running_count()
    first = len(SPANS.read_text().splitlines()) if SPANS.exists() else 0
    samples, batches = latency(max(1, ROUNDS // 2), first_i=100000, anchor=False)
    time.sleep(2)
    spans = load_spans()[first:]
    return breakdown(samples, spans), batches, containers


def restarts():
    out = []
    base = running_count()
    for k in range(RESTARTS):
        benchlib.wait_quiet(QUIET_BUSY, QUIET_WAIT)
        with benchlib.CpuWindow() as window:
            r = restart(base, "kill")
        out.append(dict(r, **window.facts()))
        log(f"restart with {base} containers: {r['marks_ms']}")
    log(f"creating containers up to {RESTART_N} (cnet run -d, one after another)")
    t0 = time.perf_counter()
    have = base
    k = 0
    while have < RESTART_N:
        k += 1
        cnet("run", "-d", "--name", f"k{k}", "--network", "bench", env=UNTRACED)
        have += 1
        if have % 200 == 0:
            log(f"  {have} containers after {time.perf_counter() - t0:.0f} s")
    created_s = time.perf_counter() - t0
    count = running_count()
    for how in ["kill"] * RESTARTS + ["down"]:
        benchlib.wait_quiet(QUIET_BUSY, QUIET_WAIT)
        with benchlib.CpuWindow() as window:
            r = restart(count, how)
        out.append(dict(r, **window.facts()))
        log(f"restart ({how}) with {count} containers: {r['marks_ms']}")
    return out, {"containers": count, "created_from": base, "seconds": round(created_s, 1)}


# ------------------------------------------------------------------------ report
STEP_ORDER = ["client (CLI process, connection)", "gateway", "ipam", "bridge", "nat", "dns", "hosts"]


def parts_of(b):
    """The stacked parts of one operation, p50 each (so they need not add up exactly)."""
    parts = [("client (CLI process, connection)", b["client_ms"].get("p50", 0))]
    for service in ["cnet-gateway", "cnet-ipam", "cnet-bridge", "cnet-nat", "cnet-dns", "cnet-hosts"]:
        if service in b["services_ms"]:
            parts.append((service.removeprefix("cnet-"), b["services_ms"][service]["p50"]))
    return parts


def markdown(result):
    lat, rst, machine = result["latency"], result["restarts"], result["machine"]
    lines = [
        f"Measured {result['date']} by `bench/control.sh` (every sample, span and restart: "
        "[bench/results/control.json](bench/results/control.json)); "
        f"{ROUNDS} rounds × {REPS} pairs per operation, interleaved, with traces exported to an "
        "OTLP receiver on loopback in the cluster's namespace.",
        "",
        "![where the time of one call goes](bench/results/control.svg)",
        "",
        "| operation | CLI wall p50 | p90 | gateway request span p50 | client p50 | "
        "gateway own | ipam | bridge | nat | dns | hosts |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    at_scale = result.get("latency_at_scale", {})
    tables = [("", lat)] + ([(f", {at_scale['containers']} containers running", at_scale["ops"])]
                            if at_scale.get("ops") else [])
    for suffix, ops in tables:
        for op in OPS:
            b = ops[op]
            svc = lambda s: fmt(b["services_ms"].get(s, {}).get("p50"))
            lines.append(
                f"| `cnet {' '.join(OPS[op](1)).replace('t1', 'tN')}`{suffix} | **{fmt(b['cli_ms'].get('p50'))}** | "
                f"{fmt(b['cli_ms'].get('p90'))} | {fmt(b['root_ms'].get('p50'))} | {fmt(b['client_ms'].get('p50'))} | "
                + " | ".join(svc(s) for s in ["cnet-gateway", "cnet-ipam", "cnet-bridge", "cnet-nat",
                                              "cnet-dns", "cnet-hosts"]) + " |")
    lines += ["", "Milliseconds, p50 over the traced calls. Service columns: the time spent in "
              "that service's own spans (request handling included), children excluded, so a "
              "row's parts add up to about the request span. Slowest named spans (p50, ms):", ""]
    for suffix, ops in tables:
        for op in ("run", "rm", "connect", "disconnect"):
            top = sorted(ops[op]["spans_ms"].items(), key=lambda kv: -(kv[1].get("p50") or 0))
            top = [(k, v) for k, v in top if "/" not in k.split(": ", 1)[1]][:8]
            lines.append(f"- `{op}`{suffix}: " + "; ".join(f"{k} {fmt(v.get('p50'))}" for k, v in top) + ".")
    lines += ["", "![restart and reconcile](bench/results/control-restart.svg)", "",
              "| restart | containers | `cnet up -d` returned | all six services SERVING | "
              "`cnet ps` lists all | `cnet system check` clean |", "|---|---|---|---|---|---|"]
    groups = {}
    for r in rst["runs"]:
        groups.setdefault((r["how"], r["containers"]), []).append(r)
    for (how, n), runs in groups.items():
        m = lambda key: median([r["marks_ms"].get(key) for r in runs])
        spread = lambda key: (f" ({fmt(min(r['marks_ms'][key] for r in runs), 0)}–"
                              f"{fmt(max(r['marks_ms'][key] for r in runs), 0)})" if len(runs) > 1 else "")
        label = "SIGKILL all, `cnet up -d`" if how == "kill" else "`cnet down`, `cnet up -d`"
        lines.append(f"| {label} (×{len(runs)}) | {n} | " + " | ".join(
            f"{fmt(m(k), 0)}{spread(k)}" for k in ("up_returned", "all_serving", "ps_lists_all", "check_clean")) + " |")
    lines += ["", f"Milliseconds from the start of `cnet up -d`, median (min–max) of the restarts; "
              f"the {rst['created']['containers']} containers were made with `cnet run -d` one after "
              f"another in {rst['created']['seconds']:.0f} s. Restarts run without the exporter.", ""]
    disturbed = [b for b in result["batches"] if (b["other_cores"] or 0) >= OTHER_MAX]
    if disturbed:
        lines.append(f"- {len(disturbed)} of {len(result['batches'])} latency batches were disturbed by other "
                     f"work on the machine (≥ {OTHER_MAX} cores): they read high.")
    lines.append(f"- Machine: {machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('os')}, "
                 f"kernel {machine.get('kernel')}; {result['cnet_version']}.")
    return "\n".join(lines)


def main():
    if "--report" in sys.argv:
        return render(json.loads(Path(RESULTS).read_text()))
    t_start = time.monotonic()
    samples, batches = latency(ROUNDS)
    time.sleep(2)   # the batch exporters flush every 200 ms (OTEL_BSP_SCHEDULE_DELAY)
    spans = load_spans()
    lat = breakdown(samples, spans)
    log(f"{len(spans)} spans received; traced: " + ", ".join(f"{op} {lat[op]['traced_runs']}" for op in lat))
    runs, created = restarts()
    log(f"latency again with {created['containers']} containers (traced)")
    lat_n, batches_n, containers_n = traced_at_scale()
    log(f"with {containers_n} containers: run p50 {lat_n['run']['cli_ms'].get('p50')} ms, "
        f"connect p50 {lat_n['connect']['cli_ms'].get('p50')} ms")
    result = {
        "benchmark": "control",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": benchlib.read_facts(WORK / "machine"),
        "cnet_version": (WORK / "version").read_text().strip(),
        "method": {"rounds": ROUNDS, "reps": REPS, "restart_n": RESTART_N, "restarts": RESTARTS,
                   "quiet_busy_pct": QUIET_BUSY, "quiet_wait_s": QUIET_WAIT, "other_max_cores": OTHER_MAX,
                   "tracing": "OTLP/gRPC to bench/otlp_receiver.py, OTEL_BSP_SCHEDULE_DELAY=200"},
        "latency": lat,
        "samples_ms": {op: [s["ms"] for s in v] for op, v in samples.items()},
        "batches": batches,
        "latency_at_scale": {"containers": containers_n, "ops": lat_n, "batches": batches_n},
        "restarts": {"runs": runs, "created": created},
        "spans_received": len(spans),
        "run_seconds": round(time.monotonic() - t_start, 1),
    }
    Path(RESULTS).write_text(json.dumps(result, indent=1) + "\n")
    render(result)


def render(result):
    lat, runs = result["latency"], result["restarts"]["runs"]
    at_scale = result.get("latency_at_scale", {})
    rows = [(f"cnet {op}", parts_of(lat[op])) for op in OPS if lat[op]["traced_runs"]]
    if at_scale.get("ops"):
        rows += [(f"{op}, {at_scale['containers']} ctrs", parts_of(at_scale["ops"][op]))
                 for op in OPS if at_scale["ops"][op]["traced_runs"]]
    plot.stacked(SVG, "Where one call's time goes (p50 per part, ms)", "ms", rows,
                 note="client = CLI wall time - gateway request span; services: own span time, children excluded")
    rows = []
    groups = {}
    for r in runs:
        groups.setdefault((r["how"], r["containers"]), []).append(r)
    for (how, n), rs in groups.items():
        m = lambda key: median([r["marks_ms"][key] for r in rs])
        serving, ps, check = m("all_serving"), m("ps_lists_all"), m("check_clean")
        rows.append((f"{'kill' if how == 'kill' else 'down'}, {n} containers",
                     [("all services SERVING", serving), ("until cnet ps lists all", max(0, ps - serving)),
                      ("until system check clean", max(0, check - max(ps, serving)))]))
    plot.stacked(RESTART_SVG, "Restart and reconcile (median ms from `cnet up -d`)", "ms", rows)
    text = markdown(result)
    if not benchlib.replace_section(MARKDOWN, "control", text):
        print(text)


if __name__ == "__main__":
    main()
