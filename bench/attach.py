#!/usr/bin/python3
"""The measuring half of bench/attach.sh (which sets the systems up and reads this
file's knobs from its environment): interleaved rounds of attach/detach pairs, then
bench/results/attach.json, attach.svg and the attach table of BENCHMARKS.md."""

import datetime
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
import plot  # noqa: E402
from benchlib import fmt, summary  # noqa: E402

WORK = Path(os.environ["WORK"])
ROUNDS, REPS = int(os.environ["ROUNDS"]), int(os.environ["REPS"])
SYSTEMS = os.environ["SYSTEMS"].split()
QUIET_BUSY, QUIET_WAIT = float(os.environ["QUIET_BUSY"]), float(os.environ["QUIET_WAIT"])
OTHER_MAX, RETRIES = float(os.environ["OTHER_MAX"]), int(os.environ["RETRIES"])
RESULTS, SVG, MARKDOWN = os.environ["RESULTS"], os.environ["SVG"], os.environ.get("MARKDOWN", "")

LABELS = {
    "cnet-connect": "cnet network connect",
    "cnet-run": "cnet run -d / rm -f",
    "netavark": "netavark setup / teardown",
    "cni": "CNI bridge+host-local+portmap",
    "docker-connect": "docker network connect",
    "docker-run": "docker run -d / rm -f",
}


def log(*words):
    benchlib.log("attach-bench", *words)


def start_workers():
    workers, errors = {}, {}
    for system in SYSTEMS:
        ns = system.split("-")[0]
        if (WORK / ns / "error").exists() or not (WORK / ns / "ns_pid").exists():
            errors[system] = "setup failed: " + (WORK / ns / "error").read_text()[-600:] if (WORK / ns / "error").exists() else "setup failed"
            continue
        config = json.loads((WORK / ns / "config.json").read_text())
        worker = benchlib.Worker(system, int((WORK / ns / "ns_pid").read_text()), config)
        ready = worker.call(do="prepare")
        # Warm-up (caches, first-time setup such as aardvark-dns's start): two checked
        # pairs, not recorded.
        for i in (1, 2):
            a = worker.call(do="attach", i=i) if ready["ok"] else ready
            c = worker.call(do="check", i=i) if a["ok"] else a
            d = worker.call(do="detach", i=i) if a["ok"] else a
            bad = next((r for r in (ready, a, c, d) if not r["ok"]), None)
            if bad:
                break
        if bad:
            errors[system] = bad["error"]
            log(f"{system}: {bad['error']}")
            worker.close()
            continue
        log(f"{system}: ready (address {c['address']} worked)")
        workers[system] = worker
    return workers, errors


def batch(worker, first_i):
    """REPS attach/detach pairs (the first one checked) and one floor call."""
    attach, detach, parts, failures = [], [], {}, []
    for k in range(REPS):
        i = first_i + k
        a = worker.call(do="attach", i=i)
        if not a["ok"]:
            failures.append(a["error"])
            continue
        attach.append(a["ms"])
        for key, value in a["parts"].items():
            parts.setdefault(key, []).append(value)
        if k == 0:
            c = worker.call(do="check", i=i)
            if not c["ok"]:
                failures.append("check: " + c["error"])
        d = worker.call(do="detach", i=i)
        if not d["ok"]:
            failures.append(d["error"])
            continue
        detach.append(d["ms"])
        for key, value in d["parts"].items():
            parts.setdefault(key, []).append(value)
    f = worker.call(do="floor")
    return {"attach_ms": attach, "detach_ms": detach, "parts_ms": parts,
            "floor_ms": f.get("ms"), "failures": failures}


def measure(workers):
    raw = {s: [] for s in workers}
    next_i = {s: 100 for s in workers}
    order = list(workers)
    for r in range(ROUNDS):
        rotated = order[r % len(order):] + order[: r % len(order)]
        for system in rotated:
            best = None
            for attempt in range(1, RETRIES + 2):
                busy_before = benchlib.wait_quiet(QUIET_BUSY, QUIET_WAIT)
                with benchlib.CpuWindow() as window:
                    result = batch(workers[system], next_i[system])
                next_i[system] += REPS
                result.update(window.facts(), round=r + 1, attempt=attempt,
                              busy_before_pct=busy_before)
                other = result["other_cores"]
                if best is None or (other is not None and other < (best["other_cores"] or 0)):
                    best = result
                if other is None or other < OTHER_MAX:
                    break
                if attempt <= RETRIES:
                    log(f"  {system}: other work took {other} cores during the batch: again")
            raw[system].append(best)
            p50 = summary(best["attach_ms"]).get("p50")
            log(f"round {r + 1}: {system}: attach p50 {p50} ms"
                f"{'' if not best['failures'] else ', failures: ' + best['failures'][0]}")
    return raw


def analyse(raw, errors, versions):
    systems = {}
    for system, batches in raw.items():
        attach = [v for b in batches for v in b["attach_ms"]]
        detach = [v for b in batches for v in b["detach_ms"]]
        parts = {}
        for b in batches:
            for key, values in b["parts_ms"].items():
                parts.setdefault(key, []).extend(values)
        round_p50 = [summary(b["attach_ms"]).get("p50") for b in batches if b["attach_ms"]]
        systems[system] = {
            "label": LABELS[system],
            "version": versions.get(system.split("-")[0]),
            "attach_ms": summary(attach),
            "detach_ms": summary(detach),
            "attach_round_p50_ms": {"min": min(round_p50, default=None), "max": max(round_p50, default=None)},
            "parts_ms": {k: summary(v) for k, v in parts.items()},
            "floor_ms": summary([b["floor_ms"] for b in batches]),
            "failures": [f for b in batches for f in b["failures"]],
            "disturbed_rounds": [b["round"] for b in batches
                                 if b["other_cores"] is not None and b["other_cores"] >= OTHER_MAX],
            "batches": batches,
        }
    for system, error in errors.items():
        systems[system] = {"label": LABELS[system], "error": error}
    return systems


def p50(systems, name, key="attach_ms"):
    return systems.get(name, {}).get(key, {}).get("p50")


def targets(systems):
    out = []
    connect = p50(systems, "cnet-connect")
    for peer in ("netavark", "docker-connect"):
        r = benchlib.ratio(connect, p50(systems, peer))
        out.append({"target": f"cnet network connect p50 <= 1/4 of {LABELS[peer]} p50",
                    "ratio": r, "met": None if r is None else r <= 0.25})
    r = benchlib.ratio(p50(systems, "cnet-run"), connect)
    out.append({"target": "cnet run -d p50 < 2x cnet network connect p50",
                "ratio": r, "met": None if r is None else r < 2})
    return out


def markdown(result):
    systems, machine = result["systems"], result["machine"]
    lines = [
        f"Measured {result['date']} by `bench/attach.sh` (every pair's figures: "
        f"[bench/results/attach.json](bench/results/attach.json)); {ROUNDS} rounds × {REPS} "
        "attach/detach pairs per system, interleaved. Milliseconds, wall time of the system's "
        "own commands; spread = min–max of the rounds' p50s.",
        "",
        "![attach and detach, p50 and p90 per system](bench/results/attach.svg)",
        "",
        "| system | version | attach p50 | attach p90 | spread of p50 | detach p50 | detach p90 | client floor p50 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for system in SYSTEMS:
        s = systems.get(system)
        if not s:
            continue
        if "error" in s:
            lines.append(f"| {s['label']} | — | not run: {s['error'][:120]} | | | | | |")
            continue
        a, d, spread = s["attach_ms"], s["detach_ms"], s["attach_round_p50_ms"]
        lines.append(
            f"| {s['label']} | {(s['version'] or '—').split(' (')[0]} | **{fmt(a.get('p50'))}** | {fmt(a.get('p90'))} | "
            f"{fmt(spread['min'])}–{fmt(spread['max'])} | {fmt(d.get('p50'))} | {fmt(d.get('p90'))} | "
            f"{fmt(s['floor_ms'].get('p50'))} |")
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for t in result["targets"]:
        met = "—" if t["met"] is None else ("yes" if t["met"] else "**no**")
        measured = "—" if t["ratio"] is None else f"{t['ratio']:.2f}×"
        lines.append(f"| {t['target']} | {measured} | {met} |")
    lines.append("")
    extra = []
    for system in ("netavark", "cni"):
        s = systems.get(system, {})
        parts = s.get("parts_ms", {})
        if "netns_add" in parts:
            extra.append(f"{s['label']}: `ip netns add` p50 {fmt(parts['netns_add'].get('p50'))} ms and "
                         f"`ip netns del` p50 {fmt(parts.get('netns_del', {}).get('p50'))} ms, not included above")
    if extra:
        lines.append("- Namespace creation for the plugin-style systems: " + "; ".join(extra) + ".")
    batches = [b for s in systems.values() for b in s.get("batches", [])]
    disturbed = [b for b in batches if (b["other_cores"] or 0) >= OTHER_MAX]
    if disturbed:
        others = sorted(b["other_cores"] for b in batches if b["other_cores"] is not None)
        lines.append(
            f"- **Disturbed**: during {len(disturbed)} of {len(batches)} batches other work on the machine "
            f"(it is shared) took ≥ {OTHER_MAX} cores (median over all batches "
            f"{benchlib.median(others):.2f} cores, at most {others[-1]:.2f}), with up to {RETRIES} "
            "retries per batch. Part of it is the kernel's own deferred work for our namespaces and veths "
            "(kworkers, outside the benchmark's cgroup). Every system was measured under the same conditions, interleaved, but "
            "the absolute figures read high. Per system: " + "; ".join(
                f"{systems[s]['label']} {len(systems[s]['disturbed_rounds'])}/{len(systems[s]['batches'])}"
                for s in SYSTEMS if systems.get(s, {}).get("batches")) + ".")
    failures = [f"{systems[s]['label']}: {len(systems[s]['failures'])} ({systems[s]['failures'][0][:100]})"
                for s in SYSTEMS if systems.get(s, {}).get("failures")]
    if failures:
        lines.append("- Failed operations (left out of the figures): " + "; ".join(failures) + ".")
    busy = [b["busy_before_pct"] for s in systems.values() for b in s.get("batches", [])]
    if busy:
        lines.append(f"- Machine busy before a batch: {min(busy):.0f}–{max(busy):.0f} % (the quiet-wait "
                     f"threshold is {QUIET_BUSY:.0f} %, for at most {QUIET_WAIT:.0f} s).")
    lines.append("")
    versions = sorted({systems[s]["version"] for s in SYSTEMS if systems.get(s, {}).get("version")})
    lines.append(f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('memory_gib')} GiB, "
                 f"{machine.get('os')}, kernel {machine.get('kernel')}. Versions: " + "; ".join(versions) + ".")
    return "\n".join(lines)


def report_only():
    """Re-renders the SVG and the markdown from an existing RESULTS file."""
    global ROUNDS, REPS, QUIET_BUSY, QUIET_WAIT, OTHER_MAX, RETRIES
    result = json.loads(Path(RESULTS).read_text())
    m = result["method"]
    ROUNDS, REPS, QUIET_BUSY, QUIET_WAIT = m["rounds"], m["reps_per_round"], m["quiet_busy_pct"], m["quiet_wait_s"]
    OTHER_MAX, RETRIES = m["other_max_cores"], m["retries"]
    render(result)


def render(result):
    systems = result["systems"]
    shown = [s for s in SYSTEMS if s in systems and "error" not in systems[s]]
    plot.bars(SVG, "Attach / detach a network namespace (ms, lower is better)", "ms",
              [LABELS[s] for s in shown],
              {"attach": [(systems[s]["attach_ms"]["p50"], systems[s]["attach_ms"]["p90"]) for s in shown],
               "detach": [(systems[s]["detach_ms"]["p50"], systems[s]["detach_ms"]["p90"]) for s in shown]},
              note=f"bench/attach.sh, {result['date']}: {ROUNDS}×{REPS} pairs per system, interleaved")
    text = markdown(result)
    if not benchlib.replace_section(MARKDOWN, "attach", text):
        print(text)


def main():
    if "--report" in sys.argv:
        return report_only()
    versions = {}
    for ns in ("cnet", "netavark", "cni", "docker"):
        path = WORK / ns / "version"
        if path.exists():
            versions[ns] = path.read_text().strip()
    workers, errors = start_workers()
    if not workers:
        sys.exit("attach-bench: no system could be set up")
    try:
        raw = measure(workers)
    finally:
        for worker in workers.values():
            worker.close()
    systems = analyse(raw, errors, versions)
    result = {
        "benchmark": "attach",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": benchlib.read_facts(WORK / "machine"),
        "method": {"rounds": ROUNDS, "reps_per_round": REPS, "quiet_busy_pct": QUIET_BUSY,
                   "quiet_wait_s": QUIET_WAIT, "other_max_cores": OTHER_MAX, "retries": RETRIES,
                   "timed": "wall time of the system's own commands (perf_counter_ns around each "
                            "process, or the CNI plugin chain), from a worker inside the system's namespaces"},
        "systems": systems,
    }
    result["targets"] = targets(systems)
    Path(RESULTS).write_text(json.dumps(result, indent=1) + "\n")
    render(result)


if __name__ == "__main__":
    main()
