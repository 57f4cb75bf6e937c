"""The peers the suite measures, and how to run each one's adapter.

Every Python peer has an adapter module ``benchmarks/peers/<module>.py``
(run as ``python -m benchmarks.peers.<module> <workload> '<json>'``); BullMQ
(Node) runs ``benchmarks/node/bench.mjs``. ``rates`` are rough jobs/s guesses
that size the first repetition's job counts; later repetitions use the rates
measured in the run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
NODE_DIR = BENCH_DIR / "node"

#: The reference peer: ratios are computed against it.
REFERENCE = "bullmq-node"


@dataclass(frozen=True)
class Peer:
    key: str
    label: str
    #: ``python``: an adapter module; ``node``: benchmarks/node/bench.mjs.
    kind: str
    #: Adapter module under benchmarks.peers (python peers).
    module: str = ""
    #: Distribution whose version is reported (python peers).
    dist: str = ""
    #: How to install it, shown when it is missing.
    install: str = ""
    #: Workloads it cannot run, with the reason.
    unsupported: dict[str, str] = field(default_factory=dict)
    #: Rough jobs/s per workload key, for the first repetition's job counts.
    rates: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def command(self, workload: str, args: dict[str, object]) -> list[str]:
        raw = json.dumps(args)
        if self.kind == "node":
            return ["node", str(NODE_DIR / "bench.mjs"), workload, raw]
        return [sys.executable, "-m", f"benchmarks.peers.{self.module}", workload, raw]

    def cwd(self) -> Path:
        return NODE_DIR if self.kind == "node" else REPO_DIR


_NO_BULK = "no bulk enqueue API"

PEERS: list[Peer] = [
    Peer(
        "bullmq-node", "BullMQ (Node)", "node",
        install="cd benchmarks/node && npm ci",
        rates={"add_single": 4500, "add_bulk": 8500, "c1": 2000, "c10": 6000, "c100": 6000},
        note="bullmq 6.7.0 + ioredis 5.11.1 (benchmarks/node/package.json)",
    ),
    Peer(
        "pyqueue", "pyqueue", "python", module="pyqueue", dist="pyqueue-redis",
        install="pip install -e .",
        rates={"add_single": 2000, "add_bulk": 5000, "c1": 2000, "c10": 2500, "c100": 4000},
        note="AsyncQueue producer; asyncio Worker with an async def processor",
    ),
    Peer(
        "bullmq-py", "bullmq (Python)", "python", module="bullmq", dist="bullmq",
        install="pip install bullmq",
        rates={"add_single": 3400, "add_bulk": 12000, "c1": 750, "c10": 900, "c100": 800},
        note="the official Python port of BullMQ",
    ),
    Peer(
        "rq", "RQ", "python", module="rq", dist="rq", install="pip install rq",
        unsupported={"c10": "one job at a time per worker process",
                     "c100": "one job at a time per worker process"},
        rates={"add_single": 1500, "add_bulk": 4500, "c1": 250},
        note="SimpleWorker (no fork per job), burst mode; enqueue_many for bulk",
    ),
    Peer(
        "arq", "arq", "python", module="arq", dist="arq", install="pip install arq",
        unsupported={"add_bulk": _NO_BULK},
        rates={"add_single": 1700, "c1": 230, "c10": 220, "c100": 650},
        note="max_jobs = concurrency; default poll_delay 0.5 s",
    ),
    Peer(
        "saq", "SAQ", "python", module="saq", dist="saq", install="pip install saq",
        unsupported={"add_bulk": _NO_BULK},
        rates={"add_single": 2400, "c1": 650, "c10": 850, "c100": 850},
        note="Redis queue; asyncio pool raised past redis-py's 100-connection default",
    ),
    Peer(
        "dramatiq", "Dramatiq", "python", module="dramatiq", dist="dramatiq",
        install="pip install 'dramatiq[redis]'",
        unsupported={"add_bulk": _NO_BULK},
        rates={"add_single": 5000, "c1": 250, "c10": 2000, "c100": 1500},
        note="RedisBroker, default middleware, worker_threads = concurrency",
    ),
    Peer(
        "celery", "Celery", "python", module="celery", dist="celery",
        install="pip install 'celery[redis]'",
        unsupported={"add_bulk": _NO_BULK},
        rates={"add_single": 1000, "c1": 550, "c10": 650, "c100": 700},
        note="Redis broker, threads pool (one process), results ignored",
    ),
]

BY_KEY = {p.key: p for p in PEERS}


def availability(peer: Peer) -> tuple[bool, str]:
    """``(True, version)`` when the peer can run here, else ``(False, why)``."""
    if peer.kind == "node":
        if shutil.which("node") is None:
            return False, "node is not on PATH"
        pkg = NODE_DIR / "node_modules" / "bullmq" / "package.json"
        if not pkg.exists():
            return False, f"npm packages not installed (run: {peer.install})"
        try:
            return True, json.loads(pkg.read_text())["version"]
        except (OSError, ValueError, KeyError) as exc:
            return False, f"cannot read {pkg}: {exc}"
    try:
        version = metadata.version(peer.dist)
    except metadata.PackageNotFoundError:
        return False, f"not installed (pip install: {peer.install.removeprefix('pip install ')})"
    probe = subprocess.run(
        [sys.executable, "-c", f"import benchmarks.peers.{peer.module}"],
        cwd=REPO_DIR, capture_output=True, text=True, timeout=60, check=False,
    )
    if probe.returncode != 0:
        lines = [ln for ln in probe.stderr.strip().splitlines() if ln.strip()]
        return False, f"installed ({version}) but its adapter does not import: " + (
            lines[-1] if lines else f"exit code {probe.returncode}")
    return True, version
