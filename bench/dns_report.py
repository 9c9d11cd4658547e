#!/usr/bin/env python3
"""Turns bench/dns.sh's raw dnsperf outputs into bench/results/dns.json and the DNS
table of BENCHMARKS.md.

    dns_report.py RAW_DIR OUT_JSON BENCHMARKS_MD

(an empty BENCHMARKS_MD: print the table, write no markdown)

RAW_DIR holds, per system: <system>.<round>.qps (a dnsperf throughput run),
<system>.<round>.lat (a dnsperf -v run, one query in flight, one line per answer with
its round-trip time), <system>.version, or <system>.error when the system could not be
set up; and `machine` (key=value lines).
"""

import datetime
import json
import math
import re
import statistics
import sys
from pathlib import Path

SYSTEMS = ["cnet", "aardvark", "docker"]
LABELS = {"cnet": "cnet (cnet-dns)", "aardvark": "aardvark-dns (Podman)", "docker": "Docker embedded DNS"}
TARGET = 2.0
# A throughput run during which this much CPU went to neither resolver nor client is
# flagged: it competed with something else.
OTHER_CPU_DISTURBED = 0.15  # issue 3: cnet at least 2x the better of aardvark-dns and Docker in QPS
BEGIN, END = "<!-- dns-results:begin -->", "<!-- dns-results:end -->"

METHOD = {
    "query": "A c2 (a container name), asked from container c1's network namespace; "
    "all three resolvers answer from their own records (nothing is forwarded)",
    "throughput": "dnsperf -l {qps_seconds} -c {clients} -q {outstanding} -t 2 "
    "(as fast as the resolver answers, {outstanding} queries in flight over {clients} "
    "UDP sockets); QPS = dnsperf's 'Queries per second'",
    "latency": "dnsperf -l {lat_seconds} -c 1 -q 20 -Q {lat_qps} -t 2 -v (a fixed light "
    "load of {lat_qps} queries/s, far below every system's capacity, so this is the round "
    "trip of a query to an otherwise idle resolver); p50/p99 by nearest rank over every "
    "answer of the round, with the latency dnsperf -v prints for each (dnsperf 2.10 has no "
    "percentile output of its own)",
    "rounds": "{rounds} rounds after a 1 s warm-up per system; each round runs every "
    "system once, the order rotated each round; medians and min-max over rounds",
    "cpu": "around each throughput run, the resolver process's CPU time from "
    "/proc/<pid>/stat (cnet-dns; aardvark-dns; for Docker all of dockerd, which hosts its "
    "embedded DNS) and the machine's busy time from /proc/stat. 'Answers per resolver "
    "CPU-second' = completed queries / resolver CPU seconds: an efficiency figure that does "
    "not depend on how much CPU the client left over. The client's CPU time comes from "
    "`times` after dnsperf; machine busy time minus resolver minus client is 'other' work, "
    "and a run (throughput or latency) with at least 0.15 cores of it is run again (up to {retries} times; the "
    "least disturbed attempt counts, its number is recorded) and flagged if it stays so",
    "quiet": "before each dnsperf run the script waits (at most {quiet_wait} s) until "
    "the machine was under {quiet_busy} % busy for a second",
    "placement": "client and resolver share the machine's cores; each system in its own "
    "network+mount+pid namespaces. cnet and Docker are queried at 127.0.0.11 inside the "
    "client container's namespace (Docker: iptables DNAT to dockerd's real port); "
    "aardvark-dns at its bridge gateway address over a veth, as Podman containers reach it",
}


def parse_machine(raw: Path) -> dict:
    facts = {}
    for line in (raw / "machine").read_text().splitlines():
        key, _, value = line.partition("=")
        facts[key] = value
    return facts


def number(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None


def parse_qps(text: str) -> dict:
    return {
        "qps": number(r"Queries per second:\s+([\d.]+)", text),
        "run_seconds": number(r"Run time \(s\):\s+([\d.]+)", text),
        "sent": number(r"Queries sent:\s+(\d+)", text),
        "completed": number(r"Queries completed:\s+(\d+)", text),
        "lost": number(r"Queries lost:\s+(\d+)", text),
        "avg_latency_loaded_us": scale(number(r"Average Latency \(s\):\s+([\d.]+)", text)),
        "max_latency_loaded_us": scale(number(r"Average Latency \(s\):.*max ([\d.]+)\)", text)),
    }


def client_cpu_seconds(text: str) -> float | None:
    """The children's user and system time that `times` printed after dnsperf."""
    lines = re.findall(r"^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$", text, re.M)
    if not lines:
        return None
    um, us, sm, ss = lines[-1]
    return 60 * int(um) + float(us) + 60 * int(sm) + float(ss)


def parse_cpu(
    path: Path,
    run_seconds: float | None,
    completed: float | None,
    machine: dict,
    client: float | None,
) -> dict:
    """Who was busy during a throughput run (see cpu_snapshot in dns.sh)."""
    if not path.exists() or not run_seconds:
        return {}
    facts = dict(line.split("=", 1) for line in path.read_text().split())
    hz, cores = float(machine.get("clock_ticks") or 100), float(machine.get("cores") or 0)
    out = {"loadavg_before": float(facts.get("before_loadavg", "nan"))}
    if "attempt" in facts:
        out["attempt"] = int(facts["attempt"])
    if "busy_before_pct" in facts:
        out["machine_busy_before_pct"] = float(facts["busy_before_pct"])
    total = float(facts["after_machine_total_ticks"]) - float(facts["before_machine_total_ticks"])
    busy = float(facts["after_machine_busy_ticks"]) - float(facts["before_machine_busy_ticks"])
    out["machine_busy_pct"] = round(100 * busy / total, 1) if total else None
    if "before_resolver_ticks" in facts and "after_resolver_ticks" in facts:
        seconds = (float(facts["after_resolver_ticks"]) - float(facts["before_resolver_ticks"])) / hz
        out["resolver_cpu_cores"] = round(seconds / run_seconds, 2)
        if seconds and completed:
            out["answers_per_resolver_cpu_second"] = round(completed / seconds)
        if client is not None:
            out["client_cpu_cores"] = round(client / run_seconds, 2)
            # Busy time of the machine that was neither the resolver nor the client: other
            # work that competed with the run (and a little of the kernel's own).
            if total and cores:
                window = total / hz / cores  # seconds between the snapshots
                other = busy / hz - seconds - client
                out["other_cpu_cores"] = round(max(other, 0) / window, 2)
    return out


def scale(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e6, 1)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least `fraction` of the values <= it."""
    rank = max(1, math.ceil(len(sorted_values) * fraction))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def parse_latency(text: str) -> dict:
    latencies, not_noerror = [], 0
    for line in text.splitlines():
        if not line.startswith("> "):
            continue
        fields = line.split()
        if fields[1] != "NOERROR":
            not_noerror += 1
        latencies.append(float(fields[-1]) * 1e6)
    latencies.sort()
    if not latencies:
        return {"samples": 0}
    return {
        "samples": len(latencies),
        "not_noerror": not_noerror,
        "lost": number(r"Queries lost:\s+(\d+)", text),
        "p50_us": round(percentile(latencies, 0.50), 1),
        "p90_us": round(percentile(latencies, 0.90), 1),
        "p99_us": round(percentile(latencies, 0.99), 1),
        "p999_us": round(percentile(latencies, 0.999), 1),
        "mean_us": round(statistics.fmean(latencies), 1),
        "max_us": round(latencies[-1], 1),
    }


def spread(values: list[float]) -> dict:
    median = statistics.median(values)
    return {
        "median": round(median, 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        # (max - min) / median: how much the rounds disagree
        "spread_pct": round(100 * (max(values) - min(values)) / median, 1) if median else None,
    }


def collect(raw: Path, machine: dict) -> dict:
    systems = {}
    for system in SYSTEMS:
        error = raw / f"{system}.error"
        rounds = sorted(raw.glob(f"{system}.*.qps"), key=lambda p: int(p.name.split(".")[1]))
        if error.exists():
            systems[system] = {"status": "failed", "reason": error.read_text().strip()}
            continue
        if not rounds:
            continue  # not asked for
        per_round = []
        for qps_file in rounds:
            n = int(qps_file.name.split(".")[1])
            row = {"round": n, **parse_qps(qps_file.read_text())}
            text = qps_file.read_text()
            row.update(parse_cpu(raw / f"{system}.{n}.qps.cpu", row["run_seconds"],
                                 row["completed"], machine, client_cpu_seconds(text)))
            text = (raw / f"{system}.{n}.lat").read_text()
            latency = parse_latency(text)
            latency["latency_run_lost"] = latency.pop("lost", None)
            row.update(latency)
            # Only what tells whether the latency run was disturbed, prefixed.
            cpu = parse_cpu(raw / f"{system}.{n}.lat.cpu", number(r"Run time \(s\):\s+([\d.]+)", text),
                            None, machine, client_cpu_seconds(text))
            for key in ("other_cpu_cores", "attempt", "machine_busy_before_pct"):
                if key in cpu:
                    row[f"latency_run_{key}"] = cpu[key]
            per_round.append(row)
        summary = {}
        for key in ("qps", "p50_us", "p99_us", "avg_latency_loaded_us", "resolver_cpu_cores",
                    "answers_per_resolver_cpu_second", "machine_busy_pct",
                    "machine_busy_before_pct", "client_cpu_cores", "other_cpu_cores"):
            values = [r[key] for r in per_round if r.get(key) is not None]
            if values:
                summary[key] = spread(values)
        systems[system] = {
            "status": "ok",
            "version": (raw / f"{system}.version").read_text().strip(),
            "rounds": per_round,
            "summary": summary,
        }
    return systems


def compare(systems: dict) -> dict:
    qps = {s: d["summary"]["qps"]["median"] for s, d in systems.items() if d["status"] == "ok" and "qps" in d["summary"]}
    peers = {s: q for s, q in qps.items() if s != "cnet"}
    if "cnet" not in qps or not peers:
        return {"target_x": TARGET, "note": "cnet or both peers missing: no comparison"}
    best = max(peers, key=peers.get)
    ratio = qps["cnet"] / peers[best]
    return {
        "better_peer": best,
        "cnet_qps_over_better_peer": round(ratio, 2),
        "target_x": TARGET,
        "target_met": ratio >= TARGET,
    }


def fmt_range(summary: dict | None, digits: int = 0) -> str:
    if not summary:
        return "—"
    return f"{summary['median']:,.{digits}f} ({summary['min']:,.{digits}f}–{summary['max']:,.{digits}f})"


def table(report: dict) -> str:
    systems, comparison, machine = report["systems"], report["comparison"], report["machine"]
    ok_qps = {s: d["summary"]["qps"]["median"] for s, d in systems.items() if d["status"] == "ok"}
    best_peer = comparison.get("better_peer")
    lines = [
        f"Measured {report['generated']} by `bench/dns.sh` "
        f"(every round's numbers: [bench/results/dns.json](bench/results/dns.json)). "
        "Medians over rounds, (min–max) in brackets.",
        "",
        "| system | version | QPS | p50 µs | p99 µs | QPS × better peer "
        "| resolver CPU, cores | answers per resolver CPU-second |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for system in SYSTEMS:
        data = systems.get(system)
        if data is None:
            continue
        if data["status"] != "ok":
            lines.append(f"| {LABELS[system]} | — | not measured: see below | — | — | — | — | — |")
            continue
        s = data["summary"]
        ratio = f"{ok_qps[system] / ok_qps[best_peer]:.2f}×" if best_peer else "—"
        lines.append(
            f"| {LABELS[system]} | {data['version']} | {fmt_range(s.get('qps'))} | "
            f"{fmt_range(s.get('p50_us'))} | {fmt_range(s.get('p99_us'))} | {ratio} | "
            f"{fmt_range(s.get('resolver_cpu_cores'), 2)} | "
            f"{fmt_range(s.get('answers_per_resolver_cpu_second'))} |"
        )
    lines.append("")
    if best_peer:
        verdict = "met" if comparison["target_met"] else "**not met**"
        lines.append(
            f"cnet answers {comparison['cnet_qps_over_better_peer']:.2f}× the QPS of the better "
            f"peer ({LABELS[best_peer]}); issue 3's target of ≥ {TARGET:g}× is {verdict}."
        )
        lines.append("")
    for system, data in systems.items():
        if data["status"] != "ok":
            reason = " ".join(data["reason"].split())
            lines.append(f"- {LABELS[system]} was not measured: `{reason[-400:]}`")
    lost = [
        f"{LABELS[s]} round {r['round']}: {r['lost']:.0f}"
        for s, d in systems.items() if d["status"] == "ok"
        for r in d["rounds"] if r.get("lost")
    ]
    if lost:
        lines.append("- Queries lost (no answer within 2 s) in throughput runs: " + "; ".join(lost))
    busy = [
        d["summary"]["machine_busy_pct"]["median"]
        for d in systems.values() if d["status"] == "ok" and "machine_busy_pct" in d["summary"]
    ]
    loads = [
        r["loadavg_before"] for d in systems.values() if d["status"] == "ok"
        for r in d["rounds"] if r.get("loadavg_before") is not None
    ]
    noisy = []
    for s, d in systems.items():
        if d["status"] != "ok":
            continue
        for r in d["rounds"]:
            why = []
            if r.get("other_cpu_cores", 0) >= OTHER_CPU_DISTURBED:
                why.append(f"{r['other_cpu_cores']:.2f} cores of other work during the QPS run")
            if r.get("latency_run_other_cpu_cores", 0) >= OTHER_CPU_DISTURBED:
                why.append(f"{r['latency_run_other_cpu_cores']:.2f} cores of other work "
                           "during the latency run")
            if why:
                noisy.append(f"{LABELS[s]} round {r['round']} ({', '.join(why)})")
    if noisy:
        lines.append(
            "- **Disturbed** by other work on the machine (it is shared), even after "
            f"{report['parameters'].get('retries')} retries: "
            + "; ".join(noisy) + ". Such runs read low (QPS) or high (latency); the medians "
            "include them."
        )
    if busy and loads:
        lines.append(
            f"- During throughput runs the machine was {min(busy):.0f}–{max(busy):.0f} % busy "
            f"(medians per system; client, resolver and anything else running); the "
            f"1-minute load average before a run was {min(loads):.1f}–{max(loads):.1f}."
        )
    versions = report["versions"]
    lines += [
        "",
        f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, "
        f"{machine.get('memory_gib')} GiB, {machine.get('os')}, kernel {machine.get('kernel')}. "
        f"cnet: {versions.get('cnet')}; dnsperf {versions.get('dnsperf')}.",
        "",
        "Method:",
        "",
    ]
    lines += [f"- {key}: {text}" for key, text in report["method"].items()]
    return "\n".join(lines)


def update_markdown(path: Path, body: str) -> None:
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n## DNS\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n## DNS\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{body}\n{END}{tail}")


def main() -> None:
    raw, out_json = Path(sys.argv[1]), Path(sys.argv[2])
    markdown = Path(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else None
    machine = parse_machine(raw)
    systems = collect(raw, machine)
    report = {
        "benchmark": "dns",
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {k: machine.get(k) for k in ("cpu", "cores", "memory_gib", "os", "kernel")},
        "versions": {
            "cnet": f"{systems.get('cnet', {}).get('version', '?')} "
            f"({machine.get('cnet_profile')} build, commit {machine.get('cnet_commit')})",
            **{s: d.get("version") for s, d in systems.items() if s != "cnet"},
            "dnsperf": machine.get("dnsperf"),
        },
        "method": {k: v.format(**machine) for k, v in METHOD.items()},
        "parameters": {
            k: int(machine[k]) if machine.get(k, "").isdigit() else machine.get(k)
            for k in ("rounds", "qps_seconds", "lat_seconds", "lat_qps", "clients", "outstanding",
                      "quiet_busy", "quiet_wait", "retries")
        },
        "systems": systems,
    }
    report["comparison"] = compare(systems)
    out_json.write_text(json.dumps(report, indent=2) + "\n")
    if markdown:
        update_markdown(markdown, table(report))
    print(table(report))


if __name__ == "__main__":
    main()
