#!/usr/bin/python3
"""The measuring half of bench/scale.sh (which sets the systems up and passes the knobs
in its environment): every system attaches namespaces in interleaved steps up to the
largest N, memory is recorded at each checkpoint N, then everything is detached again.
Writes bench/results/scale.json, scale.svg, scale-memory.svg and the scale table of
BENCHMARKS.md."""

import datetime
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
import plot  # noqa: E402
from benchlib import fmt, median, summary  # noqa: E402

WORK = Path(os.environ["WORK"])
CHECKPOINTS = sorted({int(n) for n in os.environ["SCALE_N"].split()})
MAX_N = CHECKPOINTS[-1]
DOCKER_MAX_N = int(os.environ["DOCKER_MAX_N"])
BATCH = int(os.environ["BATCH"])
SYSTEMS = os.environ["SYSTEMS"].split()
QUIET_BUSY, QUIET_WAIT = float(os.environ["QUIET_BUSY"]), float(os.environ["QUIET_WAIT"])
OTHER_MAX = float(os.environ["OTHER_MAX"])
RESULTS, SVG, MEM_SVG = os.environ["RESULTS"], os.environ["SVG"], os.environ["MEM_SVG"]
MARKDOWN = os.environ.get("MARKDOWN", "")
TARGET = 1.5   # per-attach time at N=1000 within 1.5x of N=10
WARMUP_I = 5000   # the warm-up pair's index (its address must lie in the /16s)

LABELS = {"cnet-run": "cnet run -d", "netavark": "netavark setup", "cni": "CNI ADD (bridge+portmap)",
          "docker-run": "docker run -d"}
# The processes that make up each stack (daemons: the memory the figure is about), and
# the containers' own processes, listed apart.
DAEMONS = {
    "cnet-run": ["cnet-gateway", "cnet-ipam", "cnet-bridge", "cnet-nat", "cnet-dns", "cnet-hosts", "cnet"],
    "netavark": ["aardvark-dns"],
    "cni": [],
    "docker-run": ["dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2"],
}
CONTAINER_PROCESSES = {"cnet-run": ["sleep"], "docker-run": ["sleep"]}


def log(*words):
    benchlib.log("scale-bench", *words)


def limit(system):
    return min(MAX_N, DOCKER_MAX_N) if system == "docker-run" else MAX_N


def start_workers():
    workers, errors, ns_pids = {}, {}, {}
    for system in SYSTEMS:
        ns = system.split("-")[0]
        if not (WORK / ns / "ns_pid").exists():
            errors[system] = "setup failed: " + ((WORK / ns / "error").read_text()[-600:]
                                                 if (WORK / ns / "error").exists() else "?")
            continue
        config = json.loads((WORK / ns / "config.json").read_text())
        config["name_prefix"] = "s"
        ns_pids[system] = int((WORK / ns / "ns_pid").read_text())
        worker = benchlib.Worker(system, ns_pids[system], config)
        answers = [worker.call(do="prepare")]
        # Warm-up: one attach/check/detach pair that is not recorded.
        for request in ({"do": "attach", "i": WARMUP_I}, {"do": "check", "i": WARMUP_I},
                        {"do": "detach", "i": WARMUP_I}):
            if answers[-1]["ok"]:
                answers.append(worker.call(**request))
        bad = next((a for a in answers if not a["ok"]), None)
        if bad:
            errors[system] = bad["error"]
            log(f"{system}: {bad['error']}")
            worker.close()
            continue
        workers[system] = worker
    return workers, errors, ns_pids


def memory(system, ns_pid):
    daemons = benchlib.memory_by_name(ns_pid, set(DAEMONS[system]))
    if system == "docker-run":
        # A Docker container's processes live in a pid namespace of their own, children
        # of its containerd-shim.
        shims = [pid for pid, name in benchlib.processes_in(ns_pid) if name.startswith("containerd-shim")]
        containers = benchlib.memory_by_name(ns_pid, None, benchlib.children_of(shims))
    else:
        containers = benchlib.memory_by_name(ns_pid, set(CONTAINER_PROCESSES.get(system, [])))
    total = lambda group, key: sum(v[key] for v in group.values())
    return {"daemons": daemons, "containers": containers,
            "daemons_rss_kib": total(daemons, "rss"), "daemons_pss_kib": total(daemons, "pss"),
            "containers_rss_kib": total(containers, "rss"), "containers_pss_kib": total(containers, "pss")}


def meminfo():
    facts = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemAvailable", "Slab", "SUnreclaim"):
            facts[key] = int(rest.split()[0])
    return facts


def grow(workers, ns_pids):
    data = {s: {"attach_ms": [], "detach_ms": [], "parts_ms": {}, "memory": {}, "steps": [],
                "failures": [], "checks": {}} for s in workers}
    count = {s: 0 for s in workers}
    order = list(workers)
    step = 0
    pending_checkpoints = list(CHECKPOINTS)
    started = time.monotonic()
    while any(count[s] < limit(s) for s in workers):
        step += 1
        rotated = order[step % len(order):] + order[: step % len(order)]
        busy_before = benchlib.wait_quiet(QUIET_BUSY, QUIET_WAIT)
        for system in rotated:
            if count[system] >= limit(system):
                continue
            # Never past the next checkpoint, so memory is taken at exactly N.
            upto = min(limit(system), count[system] + BATCH,
                       next((n for n in pending_checkpoints if n > count[system]), MAX_N))
            first = count[system] + 1
            with benchlib.CpuWindow() as window:
                for i in range(first, upto + 1):
                    answer = workers[system].call(do="attach", i=i)
                    if not answer["ok"]:
                        data[system]["failures"].append(f"attach {i}: {answer['error']}")
                        data[system]["attach_ms"].append(None)
                        continue
                    data[system]["attach_ms"].append(answer["ms"])
                    for key, value in answer["parts"].items():
                        data[system]["parts_ms"].setdefault(key, []).append(value)
            count[system] = upto
            data[system]["steps"].append(dict(window.facts(), first=first, last=upto,
                                              busy_before_pct=busy_before, phase="attach"))
        reached = [n for n in pending_checkpoints if all(count[s] >= min(n, limit(s)) for s in workers)]
        for n in reached:
            pending_checkpoints.remove(n)
            for system in workers:
                if count[system] == n:
                    data[system]["memory"][n] = memory(system, ns_pids[system])
                    data[system]["memory"][n]["meminfo"] = meminfo()
            line = ", ".join(f"{s} {fmt(median(data[s]['attach_ms'][max(0, n - BATCH):n]))} ms"
                             for s in workers if count[s] == n)
            log(f"N={n} after {time.monotonic() - started:.0f} s: per-attach p50 of the last {BATCH}: {line}")
    # The first and the last namespace of each system still work.
    for system in workers:
        for i in sorted({1, count[system]}):
            answer = workers[system].call(do="check", i=i)
            if answer["ok"]:
                pings = answer.get("pings") or 1
                data[system]["checks"][i] = answer["address"] + ("" if pings == 1 else f" (after {pings} pings)")
            else:
                data[system]["checks"][i] = "FAILED: " + answer["error"]
    log(f"grown in {time.monotonic() - started:.0f} s; detaching")
    return data, count, started


def shrink(workers, ns_pids, data, count):
    order = list(workers)
    step = 0
    started = time.monotonic()
    while any(count[s] > 0 for s in workers):
        step += 1
        rotated = order[step % len(order):] + order[: step % len(order)]
        busy_before = benchlib.wait_quiet(QUIET_BUSY, QUIET_WAIT)
        for system in rotated:
            if count[system] == 0:
                continue
            last = count[system]
            low = max(1, last - BATCH + 1)
            with benchlib.CpuWindow() as window:
                for i in range(last, low - 1, -1):
                    answer = workers[system].call(do="detach", i=i)
                    if not answer["ok"]:
                        data[system]["failures"].append(f"detach {i}: {answer['error']}")
                        data[system]["detach_ms"].append(None)
                        continue
                    data[system]["detach_ms"].append(answer["ms"])
            count[system] = low - 1
            data[system]["steps"].append(dict(window.facts(), first=low, last=last,
                                              busy_before_pct=busy_before, phase="detach"))
    for system in workers:
        data[system]["memory"]["after_teardown"] = memory(system, ns_pids[system])
    log(f"detached in {time.monotonic() - started:.0f} s")


WINDOW = 50


def window(values, n):
    """p50 of the attaches that end at the n-th one: the last WINDOW of them (all of
    them below WINDOW): wide enough that one disturbed step does not decide it."""
    return median(values[max(0, n - WINDOW):n])


def analyse(data, errors, versions):
    systems = {}
    for system, d in data.items():
        attach, detach = d["attach_ms"], d["detach_ms"]
        n_max = len(attach)
        per_n = {n: window(attach, n) for n in CHECKPOINTS if n <= n_max}
        # The detach list runs from the last namespace to the first: index k detaches
        # namespace n_max - k.
        curve = [(min(k + BATCH, n_max), median(attach[k:k + BATCH])) for k in range(0, n_max, BATCH)]
        # x: how many namespaces were attached when that step of detaches began.
        detach_curve = [(n_max - k, median(detach[k:k + BATCH])) for k in range(0, len(detach), BATCH)]
        first, last = per_n.get(CHECKPOINTS[0]), per_n.get(n_max)
        growth = benchlib.ratio(last, first)
        steps = d["steps"]
        systems[system] = {
            "label": LABELS[system], "version": versions.get(system.split("-")[0]), "n_max": n_max,
            "per_attach_p50_ms_at": per_n,
            "growth_last_vs_first": round(growth, 2) if growth else None,
            "attach_ms": summary(attach), "detach_ms": summary(detach),
            "attach_total_s": round(sum(v for v in attach if v) / 1000, 1),
            "detach_total_s": round(sum(v for v in detach if v) / 1000, 1),
            "parts_ms": {k: summary(v) for k, v in d["parts_ms"].items()},
            "curve_attach_ms": curve, "curve_detach_ms": detach_curve,
            "memory": d["memory"], "checks": d["checks"], "failures": d["failures"],
            "disturbed_steps": sum(1 for s in steps if (s["other_cores"] or 0) >= OTHER_MAX),
            "steps_total": len(steps),
            "raw_attach_ms": attach, "raw_detach_ms": detach, "steps": steps,
        }
    for system, error in errors.items():
        systems[system] = {"label": LABELS[system], "error": error}
    return systems


def mib(kib):
    return None if kib is None else kib / 1024


def markdown(result):
    systems, machine = result["systems"], result["machine"]
    shown = [s for s in SYSTEMS if s in systems and "error" not in systems[s]]
    cols = CHECKPOINTS
    lines = [
        f"Measured {result['date']} by `bench/scale.sh` (every attach's time and every step's CPU "
        f"accounting: [bench/results/scale.json](bench/results/scale.json)); the systems grew together, "
        f"{BATCH} attaches per system per step, order rotated. Per-attach time at N = p50 of the "
        f"{WINDOW} attaches ending at the N-th (of all N when N < {WINDOW}), in ms.",
        "",
        "![per-attach time as N grows](bench/results/scale.svg)",
        "",
        "| system | " + " | ".join(f"N={n}" for n in cols) + f" | N={MAX_N} ÷ N={cols[0]} | "
        f"target ≤ {TARGET}× | all {MAX_N} attaches, s | all detaches, s |",
        "|---|" + "---|" * (len(cols) + 4),
    ]
    for s in SYSTEMS:
        x = systems.get(s)
        if not x:
            continue
        if "error" in x:
            lines.append(f"| {x['label']} | not run: {x['error'][:100]} |" + " |" * (len(cols) + 4))
            continue
        per_n = x["per_attach_p50_ms_at"]
        growth = x["growth_last_vs_first"]
        reached = x["n_max"] == MAX_N
        met = "—" if growth is None else ("yes" if growth <= TARGET else "**no**")
        if not reached:
            met = f"— (only to N={x['n_max']})"
        shown_growth = "—" if growth is None else f"{growth:.2f}×"
        if not reached:
            shown_growth += f" (N={x['n_max']})"
        lines.append(
            f"| {x['label']} | " + " | ".join(fmt(per_n.get(n)) for n in cols) +
            f" | {shown_growth} | {met} | {fmt(x['attach_total_s'])} | {fmt(x['detach_total_s'])} |")
    lines += ["", "![memory of each stack as N grows](bench/results/scale-memory.svg)", "",
              "Memory (MiB, RSS / PSS summed over the stack's processes; the containers' own "
              "processes apart):", "",
              "| system | processes | " + " | ".join(f"N={n}" for n in cols) + " | after teardown |",
              "|---|---|" + "---|" * (len(cols) + 1)]
    for s in shown:
        x = systems[s]
        mem = x["memory"]
        def cell(key, group):
            m = mem.get(key)
            if m is None:
                return "—"
            return f"{mib(m[group + '_rss_kib']):.1f} / {mib(m[group + '_pss_kib']):.1f}"
        names = ", ".join(DAEMONS[s]) or "none (no daemon)"
        lines.append(f"| {x['label']} | {names} | " + " | ".join(cell(n, "daemons") for n in cols) +
                     f" | {cell('after_teardown', 'daemons')} |")
        if CONTAINER_PROCESSES.get(s):
            lines.append(f"| {x['label']} | containers' processes | " +
                         " | ".join(cell(n, "containers") for n in cols) + f" | {cell('after_teardown', 'containers')} |")
    cnet = systems.get("cnet-run", {})
    if cnet.get("memory"):
        per = []
        for name in DAEMONS["cnet-run"]:
            vals = [cnet["memory"].get(n, {}).get("daemons", {}).get(name, {}).get("rss") for n in cols]
            if any(v is not None for v in vals):
                per.append(f"{name} " + " → ".join("—" if v is None else f"{v / 1024:.1f}" for v in vals))
        lines += ["", "cnet per service, RSS MiB at N = " + ", ".join(map(str, cols)) + ": " + "; ".join(per) + "."]
    lines.append("")
    notes = []
    for s in shown:
        x = systems[s]
        if x["failures"]:
            notes.append(f"{x['label']}: {len(x['failures'])} failed operations ({x['failures'][0][:120]})")
        bad = [f"namespace {i}: {v}" for i, v in x["checks"].items() if "FAILED" in str(v) or "pings" in str(v)]
        if bad:
            notes.append(f"{x['label']}: the check (an address in the subnet, a ping from inside to the "
                         "bridge's gateway) of the first and last namespace: " + "; ".join(bad))
    if notes:
        lines.append("- " + "\n- ".join(notes))
    disturbed = [f"{systems[s]['label']} {systems[s]['disturbed_steps']}/{systems[s]['steps_total']}"
                 for s in shown]
    lines.append(f"- Steps during which other work on the machine took ≥ {OTHER_MAX} cores (disturbed; "
                 "their attaches read high): " + ", ".join(disturbed) + ".")
    lines.append(f"- Run time: {result['run_seconds']:.0f} s. Machine: {machine.get('cpu')}, "
                 f"{machine.get('cores')} cores, {machine.get('memory_gib')} GiB, {machine.get('os')}, "
                 f"kernel {machine.get('kernel')}.")
    return "\n".join(lines)


def main():
    if "--report" in sys.argv:
        return report_only()
    t0 = time.monotonic()
    versions = {ns: (WORK / ns / "version").read_text().strip()
                for ns in ("cnet", "netavark", "cni", "docker") if (WORK / ns / "version").exists()}
    workers, errors, ns_pids = start_workers()
    if not workers:
        sys.exit("scale-bench: no system could be set up")
    try:
        data, count, _ = grow(workers, ns_pids)
        shrink(workers, ns_pids, data, count)
    finally:
        for worker in workers.values():
            worker.close()
    systems = analyse(data, errors, versions)
    result = {
        "benchmark": "scale",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": benchlib.read_facts(WORK / "machine"),
        "method": {"checkpoints": CHECKPOINTS, "docker_max_n": DOCKER_MAX_N, "batch": BATCH,
                   "quiet_busy_pct": QUIET_BUSY, "quiet_wait_s": QUIET_WAIT, "other_max_cores": OTHER_MAX,
                   "per_attach_at_n": f"p50 of the {WINDOW} attaches ending at the N-th (all of them below {WINDOW})"},
        "systems": systems,
        "run_seconds": round(time.monotonic() - t0, 1),
    }
    Path(RESULTS).write_text(json.dumps(result, indent=1) + "\n")
    render(result)


def report_only():
    """Re-renders the SVGs and the markdown from an existing RESULTS file (JSON turned
    the checkpoint keys into strings: they are numbers again here)."""
    result = json.loads(Path(RESULTS).read_text())
    number = lambda key: int(key) if str(key).isdigit() else key
    for x in result["systems"].values():
        for field in ("per_attach_p50_ms_at", "memory", "checks"):
            if field in x:
                x[field] = {number(k): v for k, v in x[field].items()}
        if "raw_attach_ms" in x:   # the windows may have changed since the run
            raw = x["raw_attach_ms"]
            x["per_attach_p50_ms_at"] = {n: window(raw, n) for n in CHECKPOINTS if n <= len(raw)}
            first, last = x["per_attach_p50_ms_at"].get(CHECKPOINTS[0]), x["per_attach_p50_ms_at"].get(len(raw))
            growth = benchlib.ratio(last, first)
            x["growth_last_vs_first"] = round(growth, 2) if growth else None
    result["method"]["per_attach_at_n"] = f"p50 of the {WINDOW} attaches ending at the N-th (all of them below {WINDOW})"
    Path(RESULTS).write_text(json.dumps(result, indent=1) + "\n")
    render(result)


def render(result):
    systems = result["systems"]
    shown = [s for s in SYSTEMS if s in systems and "error" not in systems[s]]
    plot.lines(SVG, "Per-attach time as N grows (p50 of each step, ms)", "N (namespaces attached so far)",
               "ms per attach", {LABELS[s]: systems[s]["curve_attach_ms"] for s in shown},
               note=f"bench/scale.sh, {result['date']}; docker only to N={min(MAX_N, DOCKER_MAX_N)}",
               markers=False)
    plot.lines(MEM_SVG, "Memory of each stack's daemons as N grows (PSS, MiB)", "N", "MiB (PSS: shared pages split)",
               {LABELS[s]: [(n, mib(systems[s]["memory"][n]["daemons_pss_kib"]))
                            for n in CHECKPOINTS if n in systems[s]["memory"]] for s in shown},
               note="cnet: its six services + supervisor; netavark: aardvark-dns; docker: dockerd, containerd, shims; CNI: no daemon")
    text = markdown(result)
    if not benchlib.replace_section(MARKDOWN, "scale", text):
        print(text)


if __name__ == "__main__":
    main()
