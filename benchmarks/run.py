"""The orchestrator: one Redis, every installed peer, every workload, N repetitions.

For each repetition, each peer and each workload it:

1. empties Redis (``FLUSHALL``) and resets its counters (``CONFIG RESETSTAT``);
2. runs the peer's adapter in a fresh subprocess (so peers cannot affect each
   other and "one worker process" is literal);
3. reads Redis' ``INFO cpu`` and ``INFO commandstats`` when the adapter says
   the measured phase starts and again when it ends (the adapter waits for
   the orchestrator at both points), so pre-loading jobs, starting and
   stopping the worker are not counted;
4. keeps the adapter's result line.

Then it writes ``latest.json`` (everything), ``latest.md`` (tables of medians
and ratios against BullMQ Node) and ``latest.png`` (a chart, if matplotlib is
installed) under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.peers import BENCH_DIR, BY_KEY, PEERS, REFERENCE, REPO_DIR, Peer, availability

RESULTS_DIR = BENCH_DIR / "results"


@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    adapter: str  # the adapter's workload name
    concurrency: int = 1


WORKLOADS: list[Workload] = [
    Workload("add_single", "add 1 by 1", "enqueue_single"),
    Workload("add_bulk", "add bulk", "enqueue_bulk"),
    Workload("c1", "worker c=1", "process", 1),
    Workload("c10", "worker c=10", "process", 10),
    Workload("c100", "worker c=100", "process", 100),
    Workload("latency", "add-to-start latency", "latency"),
]
WL_BY_KEY = {w.key: w for w in WORKLOADS}

SCRIPT_COMMANDS = {"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"}
#: Commands the orchestrator itself sends inside the measured window.
OWN_COMMANDS = {"info"}


@dataclass
class Settings:
    reps: int
    target_seconds: float
    min_jobs: int
    max_jobs: int
    deadline: float
    latency_samples: int
    latency_deadline: float
    batch: int
    quick: bool


def settings_from(ns: argparse.Namespace) -> Settings:
    if ns.quick:
        s = Settings(reps=1, target_seconds=2.0, min_jobs=200, max_jobs=5000, deadline=15.0,
                     latency_samples=100, latency_deadline=4.0, batch=1000, quick=True)
    else:
        s = Settings(reps=3, target_seconds=3.0, min_jobs=500, max_jobs=50_000, deadline=30.0,
                     latency_samples=200, latency_deadline=6.0, batch=1000, quick=False)
    if ns.reps is not None:
        s.reps = ns.reps
    if ns.max_jobs is not None:
        s.max_jobs = ns.max_jobs
    if ns.target_seconds is not None:
        s.target_seconds = ns.target_seconds
    return s


# --------------------------------------------------------------------------- redis


def redis_snapshot(client: Any) -> dict[str, Any]:
    cpu = client.info("cpu")
    stats = client.info("commandstats")
    calls: dict[str, int] = {}
    for name, entry in stats.items():
        cmd = name.removeprefix("cmdstat_")
        if isinstance(entry, dict) and "calls" in entry:
            calls[cmd] = int(entry["calls"])
    return {
        "cpu": float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
        "calls": calls,
    }


def redis_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    calls = {
        cmd: n - before["calls"].get(cmd, 0)
        for cmd, n in after["calls"].items()
        if cmd not in OWN_COMMANDS and n - before["calls"].get(cmd, 0) > 0
    }
    return {
        "cpu_seconds": after["cpu"] - before["cpu"],
        "commands": sum(calls.values()),
        "script_calls": sum(n for c, n in calls.items() if c.split("|")[0] in SCRIPT_COMMANDS),
        "by_command": dict(sorted(calls.items(), key=lambda kv: -kv[1])),
    }


# --------------------------------------------------------------------------- progress


class Progress:
    """One line on stderr (tqdm when installed and stderr is a terminal)."""

    def __init__(self, total: int, use_tqdm: bool = True) -> None:
        self.total = total
        self.done = 0
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self._bar: Any = None
        if use_tqdm and self.tty:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, unit="run", dynamic_ncols=True, leave=True)

    def label(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(text)
        elif self.tty:
            self._draw(text)

    def advance(self, text: str = "") -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
            return
        self._draw(text)

    def message(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
            return
        if self.tty:
            sys.stderr.write("\r\x1b[2K")
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def _draw(self, text: str) -> None:
        elapsed = time.monotonic() - self.start
        width = 24
        filled = int(width * self.done / max(1, self.total))
        eta = ""
        if self.done:
            eta = f" eta {_fmt_duration(elapsed / self.done * (self.total - self.done))}"
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{_fmt_duration(elapsed)}{eta}  {text}")
        if self.tty:
            cols = shutil.get_terminal_size((100, 20)).columns
            sys.stderr.write("\r\x1b[2K" + line[: cols - 1])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s"


# --------------------------------------------------------------------------- one run


def run_one(peer: Peer, workload: Workload, args: dict[str, Any], client: Any,
            timeout: float) -> dict[str, Any]:
    """Run one adapter subprocess; return its result with the Redis deltas."""
    client.flushall()
    client.config_resetstat()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_DIR), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    env.setdefault("PYTHONUNBUFFERED", "1")
    cmd = peer.command(workload.adapter, {**args, "handshake": True})
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as errfile:
        proc = subprocess.Popen(
            cmd, cwd=peer.cwd(), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=errfile, text=True, bufsize=1,
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        snaps: dict[str, dict[str, Any]] = {}
        result: dict[str, Any] | None = None
        stray: list[str] = []
        try:
            assert proc.stdout is not None and proc.stdin is not None
            for line in proc.stdout:
                line = line.strip()
                if not line:
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    stray.append(line)
                    continue
                if not isinstance(msg, dict):
                    stray.append(line)
                elif "checkpoint" in msg:
                    snaps[msg["checkpoint"]] = redis_snapshot(client)
                    with contextlib.suppress(BrokenPipeError):
                        proc.stdin.write("ok\n")
                        proc.stdin.flush()
                elif "result" in msg:
                    result = msg["result"]
            proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            with contextlib.suppress(BrokenPipeError, OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
        errfile.seek(0)
        stderr = errfile.read()
    out: dict[str, Any] = {
        "peer": peer.key, "workload": workload.key, "args": args,
        "wall_seconds": time.monotonic() - started, "exit_code": proc.returncode,
    }
    if result is None:
        why = "timed out" if timed_out.is_set() else f"exit code {proc.returncode}"
        tail = "\n".join((stderr.strip().splitlines() or stray)[-8:])
        out["error"] = f"{why}, no result; last output:\n{tail}"
        return out
    out["result"] = result
    if "unsupported" in result:
        out["unsupported"] = result["unsupported"]
        return out
    if "start" in snaps and "end" in snaps:
        out["redis"] = redis_delta(snaps["start"], snaps["end"])
    if result.get("timed_out"):
        out["warning"] = f"stopped at the {args.get('deadline')} s deadline"
    return out


# --------------------------------------------------------------------------- planning


def jobs_for(peer: Peer, wl: Workload, rates: dict[tuple[str, str], float],
             s: Settings) -> int:
    rate = rates.get((peer.key, wl.key)) or peer.rates.get(wl.key) or 500.0
    n = rate * s.target_seconds
    n = max(s.min_jobs, min(s.max_jobs, n))
    step = 100 if n < 10_000 else 1000
    return int(math.ceil(n / step) * step)


def adapter_args(peer: Peer, wl: Workload, url: str, rates: dict[tuple[str, str], float],
                 s: Settings) -> dict[str, Any]:
    args: dict[str, Any] = {"url": url, "queue": f"bench-{wl.key}"}
    if wl.key == "latency":
        args.update(samples=s.latency_samples, deadline=s.latency_deadline)
    else:
        args.update(jobs=jobs_for(peer, wl, rates, s), deadline=s.deadline,
                    concurrency=wl.concurrency, batch=s.batch)
    return args


def _resized_args(m: dict[str, Any], peer: Peer, wl: Workload, url: str,
                  rates: dict[tuple[str, str], float], s: Settings) -> dict[str, Any] | None:
    """New arguments when a first-repetition run was much shorter than the target
    and more jobs are allowed; else None."""
    r = m.get("result") or {}
    tp = throughput(m)
    if wl.key == "latency" or tp is None or r.get("seconds", 0) >= s.target_seconds / 2:
        return None
    args = adapter_args(peer, wl, url, {**rates, (peer.key, wl.key): tp}, s)
    return args if args["jobs"] > m["args"]["jobs"] * 1.5 else None


def throughput(m: dict[str, Any]) -> float | None:
    r = m.get("result") or {}
    if "jobs" in r and r.get("seconds"):
        return float(r["jobs"]) / float(r["seconds"])
    return None


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run the same queue workloads through pyqueue and the installed peers "
                    "(BullMQ Node, bullmq, RQ, arq, SAQ, Dramatiq, Celery) on one Redis.",
    )
    p.add_argument("--quick", action="store_true",
                   help="one repetition, at most 5,000 jobs per measurement")
    p.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --quick)")
    p.add_argument("--peers", help="comma-separated peers to run (default: all installed): "
                   + ",".join(p.key for p in PEERS))
    p.add_argument("--workloads", help="comma-separated workloads (default: all): "
                   + ",".join(w.key for w in WORKLOADS))
    p.add_argument("--max-jobs", type=int, help="cap on jobs per measurement")
    p.add_argument("--target-seconds", type=float,
                   help="aim for measurements this long (default 3; 2 with --quick)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR,
                   help="output directory (default benchmarks/results)")
    p.add_argument("--name", default="latest", help="output file stem (default latest)")
    p.add_argument("--no-tqdm", action="store_true", help="plain progress line even if tqdm "
                   "is installed")
    return p


def _pick(raw: str | None, known: dict[str, Any], what: str) -> list[str]:
    if not raw:
        return list(known)
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; known: {', '.join(known)}")
    return keys


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    node = ""
    if shutil.which("node"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            node = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                  timeout=10, check=False).stdout.strip()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "node": node, "platform": platform.platform(),
    }


def _git_state() -> dict[str, Any] | None:
    """The commit pyqueue was measured at, and its uncommitted files (pyqueue/, lua/)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_DIR, capture_output=True, text=True,
                              timeout=10, check=True).stdout.rstrip("\n")

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = [line[3:] for line in git("status", "--porcelain", "--", "pyqueue", "lua")
                 .splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "uncommitted": dirty}


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    s = settings_from(ns)
    peer_keys = _pick(ns.peers, BY_KEY, "peers")
    wl_keys = _pick(ns.workloads, WL_BY_KEY, "workloads")

    import redis

    from benchmarks import report
    from pyqueue._server import RedisServer

    print("checking peers ...", file=sys.stderr)
    peers: list[Peer] = []
    versions: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for key in peer_keys:
        peer = BY_KEY[key]
        ok, info = availability(peer)
        if ok:
            peers.append(peer)
            versions[key] = info
            print(f"  {peer.label:<16} {info}", file=sys.stderr)
        else:
            skipped[key] = info
            print(f"  {peer.label:<16} SKIPPED: {info}", file=sys.stderr)
    if not peers:
        print("no peer can run; nothing to do", file=sys.stderr)
        return 1
    if REFERENCE not in versions:
        why = "not available" if REFERENCE in peer_keys else "not selected"
        print(f"note: {BY_KEY[REFERENCE].label} is {why}, so no ratios will be computed",
              file=sys.stderr)

    plan = [(peer, WL_BY_KEY[k]) for peer in peers for k in wl_keys
            if k not in peer.unsupported]
    total = len(plan) * s.reps
    server = RedisServer()
    server.start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    redis_version = client.info("server")["redis_version"]
    print(f"redis-server {redis_version} on {server.url} (pid {server.pid}); "
          f"{s.reps} repetition(s), {total} runs", file=sys.stderr)
    meta: dict[str, Any] = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "redis_version": redis_version, "settings": s.__dict__, "machine": _machine(),
        "loadavg_start": _loadavg(), "versions": versions, "skipped": skipped,
        "pyqueue_git": _git_state(),
        "workloads": wl_keys,
    }
    measurements: list[dict[str, Any]] = []
    rates: dict[tuple[str, str], float] = {}
    progress = Progress(total, use_tqdm=not ns.no_tqdm)
    began = time.monotonic()
    try:
        for rep in range(1, s.reps + 1):
            for peer, wl in plan:
                text = f"rep {rep}/{s.reps} {peer.label}: {wl.label}"
                progress.label(text)
                args = adapter_args(peer, wl, server.url, rates, s)
                timeout = float(args["deadline"]) + 90.0
                m = run_one(peer, wl, args, client, timeout)
                m["rep"] = rep
                resized = _resized_args(m, peer, wl, server.url, rates, s) if rep == 1 else None
                if resized is not None:
                    # The guessed rate was far off: measure again at the right size.
                    m["discarded"] = "too short: measured again with more jobs"
                    measurements.append(m)
                    progress.label(text + " (again, more jobs)")
                    m = run_one(peer, wl, resized, client, float(resized["deadline"]) + 90.0)
                    m["rep"] = rep
                measurements.append(m)
                tp = throughput(m)
                if tp is not None:
                    seen = [throughput(x) for x in measurements
                            if x["peer"] == peer.key and x["workload"] == wl.key
                            and "discarded" not in x]
                    vals = sorted(v for v in seen if v)
                    rates[(peer.key, wl.key)] = vals[len(vals) // 2]
                if "error" in m:
                    progress.message(f"  {peer.label} {wl.label} (rep {rep}) FAILED: "
                                     + m["error"].replace("\n", "\n    "))
                elif "unsupported" in m:
                    progress.message(f"  {peer.label} {wl.label}: not supported "
                                     f"({m['unsupported']})")
                elif "warning" in m:
                    progress.message(f"  {peer.label} {wl.label} (rep {rep}): {m['warning']}")
                progress.advance(text)
    except KeyboardInterrupt:
        progress.message("interrupted: writing what was measured so far")
    finally:
        progress.close()
        client.close()
        server.stop()
    meta["seconds"] = round(time.monotonic() - began, 1)
    meta["loadavg_end"] = _loadavg()

    out_dir: Path = ns.out
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "measurements": measurements}
    summary = report.summarize(data)
    data["summary"] = summary
    json_path = out_dir / f"{ns.name}.json"
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    md_path = out_dir / f"{ns.name}.md"
    md_path.write_text(report.markdown(data))
    png_path = out_dir / f"{ns.name}.png"
    chart_msg = report.chart(data, png_path)
    print(report.console_table(data), file=sys.stderr)
    print(f"wrote {md_path}, {json_path}" + (f", {png_path}" if chart_msg is None else ""),
          file=sys.stderr)
    if chart_msg:
        print(chart_msg, file=sys.stderr)
    failed = [m for m in measurements if "error" in m]
    return 1 if failed and len(failed) == len(measurements) else 0


if __name__ == "__main__":
    sys.exit(main())
