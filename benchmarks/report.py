"""Medians, ratios, the Markdown report and the PNG chart of a benchmark run."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from benchmarks.peers import BY_KEY, REFERENCE

THROUGHPUT_KEYS = ["add_single", "add_bulk", "c1", "c10", "c100"]
THROUGHPUT_LABELS = {
    "add_single": "add 1 by 1", "add_bulk": "add bulk", "c1": "worker c=1",
    "c10": "worker c=10", "c100": "worker c=100",
}
TIMES = "\u00d7"  # the multiplication sign of the ratios

#: The workload whose Redis cost the main table shows.
COST_KEY = "c100"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarize(data: dict[str, Any]) -> dict[str, Any]:
    meta = data["meta"]
    summary: dict[str, Any] = {}
    for key, version in meta["versions"].items():
        peer = BY_KEY[key]
        entry: dict[str, Any] = {
            "label": peer.label, "version": version, "note": peer.note,
            "metrics": {}, "errors": [], "unsupported": dict(peer.unsupported),
        }
        for wl in meta["workloads"]:
            runs = [m for m in data["measurements"]
                    if m["peer"] == key and m["workload"] == wl and "discarded" not in m]
            for m in runs:
                if "error" in m:
                    entry["errors"].append(f"{wl} rep {m.get('rep')}: {m['error']}")
                elif "unsupported" in m:
                    entry["unsupported"][wl] = m["unsupported"]
            good = [m for m in runs if "result" in m and "unsupported" not in m]
            if not good:
                continue
            metric: dict[str, Any] = {"reps": len(good)}
            if wl == "latency":
                p50s, p99s, counts, cmds = [], [], [], []
                for m in good:
                    lat = m["result"].get("latencies_ms") or []
                    if not lat:
                        continue
                    p50s.append(_percentile(lat, 50))
                    p99s.append(_percentile(lat, 99))
                    counts.append(len(lat))
                    if "redis" in m:
                        cmds.append(m["redis"]["commands"] / len(lat))
                metric.update(p50_ms=_median(p50s), p99_ms=_median(p99s),
                              p50_values=p50s, p99_values=p99s, samples=counts,
                              cmds_per_job=_median(cmds))
            else:
                rates, cpu, cmds, scripts, jobs = [], [], [], [], []
                for m in good:
                    r = m["result"]
                    if not r.get("jobs") or not r.get("seconds"):
                        continue
                    rates.append(r["jobs"] / r["seconds"])
                    jobs.append(r["jobs"])
                    red = m.get("redis")
                    if red:
                        cpu.append(red["cpu_seconds"] / r["jobs"] * 1000.0)
                        cmds.append(red["commands"] / r["jobs"])
                        scripts.append(red["script_calls"] / r["jobs"])
                metric.update(jobs_per_s=_median(rates), values=rates, jobs=jobs,
                              cpu_s_per_1k=_median(cpu), cmds_per_job=_median(cmds),
                              script_calls_per_job=_median(scripts))
            entry["metrics"][wl] = metric
        summary[key] = entry
    return summary


# --------------------------------------------------------------------------- formatting


def _num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "—"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def _ratio(v: float | None, ref: float | None) -> str:
    if v is None or not ref:
        return "—"
    r = v / ref
    return f"{r:.2f}{TIMES}" if r < 10 else f"{r:.1f}{TIMES}"


def _cell(entry: dict[str, Any], wl: str, field: str, digits: int = 0) -> str:
    if wl == COST_KEY and field in ("cpu_s_per_1k", "cmds_per_job"):
        v, used = _cost(entry, field)
        if v is not None and used != COST_KEY:
            return _num(v, digits) + " †"
    metric = entry["metrics"].get(wl)
    if metric is None or metric.get(field) is None:
        if wl in entry["unsupported"]:
            return "n/a"
        return "error" if any(e.startswith(f"{wl} ") for e in entry["errors"]) else "—"
    return _num(metric[field], digits)


def _get(entry: dict[str, Any] | None, wl: str, field: str) -> float | None:
    if entry is None:
        return None
    metric = entry["metrics"].get(wl)
    return None if metric is None else metric.get(field)


def _cost(entry: dict[str, Any] | None, field: str) -> tuple[float | None, str]:
    """A Redis-cost figure at c=100, or at c=1 for a peer without concurrency."""
    for wl in (COST_KEY, "c1"):
        v = _get(entry, wl, field)
        if v is not None:
            return v, wl
        if entry is None or wl not in entry["unsupported"]:
            break
    return None, COST_KEY


def _columns(workloads: list[str]) -> list[tuple[str, str, str, int]]:
    """(header, workload, field, digits) of the main table."""
    cols: list[tuple[str, str, str, int]] = []
    for wl in THROUGHPUT_KEYS:
        if wl in workloads:
            cols.append((f"{THROUGHPUT_LABELS[wl]} (jobs/s)", wl, "jobs_per_s", 0))
    if "latency" in workloads:
        cols.append(("latency p50 (ms)", "latency", "p50_ms", 2))
        cols.append(("latency p99 (ms)", "latency", "p99_ms", 2))
    if COST_KEY in workloads:
        cols.append(("Redis CPU s / 1k jobs (c=100)", COST_KEY, "cpu_s_per_1k", 3))
        cols.append(("Redis cmds / job (c=100)", COST_KEY, "cmds_per_job", 1))
    return cols


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def results_table(data: dict[str, Any]) -> str:
    summary = data["summary"]
    cols = _columns(data["meta"]["workloads"])
    rows = [[f"{e['label']} {e['version']}"] + [_cell(e, wl, f, d) for _, wl, f, d in cols]
            for e in summary.values()]
    return _table(["peer"] + [c[0] for c in cols], rows)


def ratios_table(data: dict[str, Any]) -> str | None:
    summary = data["summary"]
    ref = summary.get(REFERENCE)
    if ref is None:
        return None
    cols = _columns(data["meta"]["workloads"])
    rows = []
    for key, e in summary.items():
        if key == REFERENCE:
            continue
        row = [e["label"]]
        for _, wl, f, _d in cols:
            if wl == COST_KEY and f in ("cpu_s_per_1k", "cmds_per_job"):
                v, used = _cost(e, f)
                cell = _ratio(v, _get(ref, used, f))
                row.append(cell + " †" if v is not None and used != COST_KEY else cell)
                continue
            v = _get(e, wl, f)
            ratio = _ratio(v, _get(ref, wl, f))
            row.append("n/a" if v is None and wl in e["unsupported"] else ratio)
        rows.append(row)
    return _table(["peer / BullMQ (Node)"] + [c[0] for c in cols], rows)


def cost_table(data: dict[str, Any]) -> str:
    summary = data["summary"]
    wls = [w for w in THROUGHPUT_KEYS if w in data["meta"]["workloads"]]
    header = ["peer"] + [f"{THROUGHPUT_LABELS[w]}: cmds/job · CPU ms/job" for w in wls]
    if "latency" in data["meta"]["workloads"]:
        header.append("latency run: cmds/job")
    rows = []
    for e in summary.values():
        row = [e["label"]]
        for wl in wls:
            cmds, cpu = _get(e, wl, "cmds_per_job"), _get(e, wl, "cpu_s_per_1k")
            if cmds is None:
                row.append("n/a" if wl in e["unsupported"] else "—")
            else:
                row.append(f"{cmds:.1f} · {cpu:.3f}" if cpu is not None else f"{cmds:.1f}")
        if "latency" in data["meta"]["workloads"]:
            row.append(_num(_get(e, "latency", "cmds_per_job"), 1))
        rows.append(row)
    return _table(header, rows)


def jobs_table(data: dict[str, Any]) -> str:
    summary = data["summary"]
    wls = [w for w in THROUGHPUT_KEYS if w in data["meta"]["workloads"]]
    header = ["peer"] + [THROUGHPUT_LABELS[w] for w in wls]
    if "latency" in data["meta"]["workloads"]:
        header.append("latency samples")
    rows = []
    for e in summary.values():
        row = [e["label"]]
        for wl in wls:
            metric = e["metrics"].get(wl)
            row.append(" / ".join(f"{j:,}" for j in metric["jobs"]) if metric else
                       ("n/a" if wl in e["unsupported"] else "—"))
        if "latency" in data["meta"]["workloads"]:
            metric = e["metrics"].get("latency")
            row.append(" / ".join(str(n) for n in metric["samples"]) if metric else "—")
        rows.append(row)
    return _table(header, rows)


def markdown(data: dict[str, Any]) -> str:
    meta = data["meta"]
    s = meta["settings"]
    mach = meta["machine"]
    out: list[str] = []
    out.append("# pyqueue benchmarks\n")
    out.append(
        f"Run {meta['started']} ({meta.get('seconds', 0):.0f} s) on {mach['cpu']} "
        f"({mach['cores']} cores), Redis {meta['redis_version']}, Python {mach['python']}"
        + (f", Node {mach['node']}" if mach.get("node") else "")
        + f". {s['reps']} repetition(s){' (--quick)' if s['quick'] else ''}: "
        "every figure is the median over the repetitions. Load average at start / end: "
        f"{meta.get('loadavg_start')} / {meta.get('loadavg_end')}.\n")
    out.append(
        "Every job is a no-op with a 200-byte JSON payload; each measurement runs in a fresh "
        "process against one dedicated `redis-server` (no persistence), emptied before each "
        "run. Throughput is one worker process, from the first job's start to the last "
        "job's completion, over jobs pre-loaded before the worker starts. Redis CPU and "
        "commands are the `INFO cpu` / `INFO commandstats` deltas of the measured phase only "
        "(commands inside Lua scripts count, as Redis counts them). See "
        "[README.md](../README.md) for the workloads and caveats.\n")
    git = meta.get("pyqueue_git")
    if git:
        dirty = git.get("uncommitted") or []
        out.append(f"pyqueue measured at commit `{git['commit']}`"
                   + (f" plus uncommitted changes to {len(dirty)} file(s) under pyqueue/ and "
                      f"lua/ ({', '.join(dirty[:8])}{', …' if len(dirty) > 8 else ''})"
                      if dirty else "") + ".\n")
    out.append("## Results\n")
    out.append(results_table(data) + "\n")
    out.append("† at c=1: the peer runs one job at a time per worker process (ratios then "
               "compare with BullMQ (Node) at c=1).\n")
    ratios = ratios_table(data)
    if ratios:
        out.append("## Ratios against BullMQ (Node), same run\n")
        out.append(f"Throughput: above 1{TIMES} is faster than BullMQ (Node). Latency, Redis "
                   f"CPU and commands per job: below 1{TIMES} is better.\n")
        out.append(ratios + "\n")
    out.append("## Redis cost per job, by workload\n")
    out.append("Commands per job (all calls in `INFO commandstats`, including those made "
               "inside Lua scripts) · Redis CPU milliseconds per job (user + sys). The "
               "latency column includes what an idle worker costs while it waits.\n")
    out.append(cost_table(data) + "\n")
    out.append("## Jobs per measurement\n")
    out.append("Sized so each measurement takes a few seconds (the first repetition from "
               "rough guesses, later ones from the rates measured in this run), capped at "
               f"{s['max_jobs']:,} jobs and {s['deadline']:.0f} s.\n")
    out.append(jobs_table(data) + "\n")
    out.append("## Peers\n")
    for e in data["summary"].values():
        extra = "; ".join(f"{k}: {v}" for k, v in e["unsupported"].items())
        out.append(f"- **{e['label']}** {e['version']}: {e['note']}"
                   + (f" (not measured: {extra})" if extra else ""))
    for key, why in meta["skipped"].items():
        out.append(f"- **{BY_KEY[key].label}**: skipped, {why}")
    out.append("")
    errors = [(e["label"], err) for e in data["summary"].values() for err in e["errors"]]
    if errors:
        out.append("## Failed runs\n")
        for label, err in errors:
            first = err.splitlines()[0]
            out.append(f"- {label}: {first}")
        out.append("")
    return "\n".join(out)


def console_table(data: dict[str, Any]) -> str:
    text = "\n" + results_table(data)
    ratios = ratios_table(data)
    if ratios:
        text += "\n\n" + ratios
    return text + "\n"


# --------------------------------------------------------------------------- chart


def chart(data: dict[str, Any], path: Path) -> str | None:
    """Write the PNG; return a message instead when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return ("matplotlib is not installed: no chart written "
                "(pip install matplotlib, or the bench extra)")
    summary = data["summary"]
    keys = list(summary)
    labels = [summary[k]["label"] for k in keys]
    wls = [w for w in THROUGHPUT_KEYS if w in data["meta"]["workloads"]]
    colors = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    plain = matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}")
    ax = axes[0][0]
    width = 0.8 / max(1, len(keys))
    for i, key in enumerate(keys):
        vals = [_get(summary[key], wl, "jobs_per_s") or 0 for wl in wls]
        xs = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(wls))]
        ax.bar(xs, vals, width, label=labels[i], color=colors[i % len(colors)])
    positive = [_get(summary[k], wl, "jobs_per_s") or 0 for k in keys for wl in wls]
    positive = [v for v in positive if v > 0]
    if positive:
        ax.set_ylim(bottom=min(positive) / 2, top=max(positive) * 2)
    ax.set_xticks(range(len(wls)))
    ax.set_xticklabels([THROUGHPUT_LABELS[w] for w in wls])
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plain)
    ax.set_ylabel("jobs/s (log scale, higher is better)")
    ax.set_title("Throughput")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", which="both", alpha=0.3)

    def per_peer(ax: Any, field: str, title: str, ylabel: str, log: bool) -> None:
        found = [_cost(summary[k], field) for k in keys]
        vals = [v for v, _ in found]
        xs = list(range(len(keys)))
        ax.bar(xs, [v or 0 for v in vals], color=[colors[i % len(colors)] for i in xs])
        for x, (v, used) in zip(xs, found, strict=True):
            if v is not None:
                note = "" if used == COST_KEY else " (c=1)"
                ax.annotate(f"{v:.3g}{note}", (x, v), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", which="both", alpha=0.3)

    ax = axes[0][1]
    if "latency" in data["meta"]["workloads"]:
        xs = list(range(len(keys)))
        p50 = [_get(summary[k], "latency", "p50_ms") or 0 for k in keys]
        p99 = [_get(summary[k], "latency", "p99_ms") or 0 for k in keys]
        ax.bar([x - 0.2 for x in xs], p50, 0.4, label="p50", color="tab:blue")
        ax.bar([x + 0.2 for x in xs], p99, 0.4, label="p99", color="tab:orange")
        positive = [v for v in p50 + p99 if v > 0]
        if positive:
            ax.set_ylim(bottom=min(positive) / 2, top=max(positive) * 1.5)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_ylabel("ms (log scale, lower is better)")
        ax.set_title("Add-to-start latency, idle worker")
        ax.legend(fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    else:
        ax.set_visible(False)
    per_peer(axes[1][0], "cpu_s_per_1k", "Redis CPU per 1,000 jobs (worker c=100)",
             "CPU seconds (lower is better)", False)
    per_peer(axes[1][1], "cmds_per_job", "Redis commands per job (worker c=100)",
             "commands (lower is better)", False)
    meta = data["meta"]
    fig.suptitle(f"pyqueue benchmarks, {meta['started']}, Redis {meta['redis_version']}, "
                 f"{meta['settings']['reps']} rep(s), medians", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
