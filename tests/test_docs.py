"""Every ```python block of the docs runs as pasted.

Each block runs in its own ``python`` subprocess with ``$REDIS_URL`` set to
the test server, and must exit 0 within a timeout. Two visible conventions
in the Markdown, an HTML comment on the line before the block:

* ``<!-- no-run -->``: a fragment or a signature, not meant to run on its
  own (keep these few);
* ``<!-- run-until: TEXT -->``: the block runs until Ctrl-C (a worker). The
  test waits for ``TEXT`` on its stdout, then sends SIGINT, and expects a
  clean exit (status 0, no traceback). The code must say "Ctrl-C" in a
  comment, so that a reader knows too.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Pages whose blocks are run: every page of docs/ (and the README). A new
#: page is added here with its first block that follows the conventions above.
PAGES = ["README.md", "docs/index.md", "docs/getting-started.md", "docs/queues.md",
         "docs/workers.md", "docs/jobs.md", "docs/events.md", "docs/errors.md",
         "docs/guarantees.md", "docs/testing.md", "docs/email.md", "docs/groups.md",
         "docs/schedulers.md", "docs/faq.md", "docs/migrating.md", "docs/cli.md",
         "docs/format.md", "docs/benchmarks.md", "docs/outbox.md", "docs/production.md",
         "docs/flows.md", "docs/dead-letters.md", "docs/observability.md",
         "docs/dashboard.md", "docs/scaling.md"]

TIMEOUT = 60.0
_FENCE = re.compile(r"^```python\s*$")
_MARK = re.compile(r"^<!--\s*(no-run|run-until:\s*(.+?))\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    code: str
    mode: str  # "run", "no-run" or "until"
    until: str = ""


def blocks(page: str) -> list[Block]:
    """The ```python blocks of ``page`` with the convention that precedes each."""
    path = ROOT / page
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    found = []
    i = 0
    while i < len(lines):
        if _FENCE.match(lines[i]):
            start = i + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            mark = _MARK.match(before.strip())
            if mark is None:
                found.append(Block(page, i + 1, "\n".join(lines[start:end]), "run"))
            elif mark.group(1) == "no-run":
                found.append(Block(page, i + 1, "\n".join(lines[start:end]), "no-run"))
            else:
                found.append(Block(page, i + 1, "\n".join(lines[start:end]), "until",
                                   mark.group(2).strip()))
            i = end
        i += 1
    return found


ALL = [b for page in PAGES for b in blocks(page)]
RUNNABLE = [b for b in ALL if b.mode != "no-run"]


def _env(redis_url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYQUEUE_REDIS_URL"}
    env.update(REDIS_URL=redis_url, PYQUEUE_HOME=str(home), PYTHONUNBUFFERED="1")
    return env


def test_blocks_are_found_and_mostly_runnable() -> None:
    assert len([b for b in ALL if b.page == "docs/getting-started.md"]) >= 2
    assert [b for b in ALL if b.page == "README.md"]
    no_run = [b for b in ALL if b.mode == "no-run"]
    assert len(no_run) <= len(RUNNABLE) // 2, [(b.page, b.line) for b in no_run]


def test_every_page_is_listed_and_exists() -> None:
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages - set(PAGES) == set(), "add the new page to PAGES"
    assert [page for page in PAGES if not (ROOT / page).exists()] == []


def test_blocks_that_run_until_ctrl_c_say_so() -> None:
    for block in (b for b in ALL if b.mode == "until"):
        assert "Ctrl-C" in block.code, f"{block.page}:{block.line} runs until Ctrl-C: say so"


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"{b.page}:{b.line}" for b in RUNNABLE])
def test_block_runs_as_pasted(block: Block, redis_url: str, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", block.code], cwd=tmp_path,
                            env=_env(redis_url, tmp_path / "home"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if block.mode == "until":
            out = _read_until(proc, block.until)
            proc.send_signal(signal.SIGINT)
            rest, err = proc.communicate(timeout=TIMEOUT)
            out += rest
        else:
            out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    where = f"{block.page}:{block.line}\n--- stdout\n{out}\n--- stderr\n{err}"
    assert proc.returncode == 0, where
    assert "Traceback" not in err, where


def _read_until(proc: subprocess.Popen[str], text: str) -> str:
    """Read ``proc``'s stdout until it contains ``text`` (or fail at the deadline)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + TIMEOUT
    seen = b""
    while text.encode() not in seen:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(remaining, 0))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:  # the deadline passed, or the process closed its stdout
            raise AssertionError(f"never printed {text!r}; got:\n{seen.decode()}")
        seen += chunk
    return seen.decode()


#: Example scripts that say how to run them with $REDIS_URL (the others are
#: modules for `pyqueue worker` or an app server, imported below instead).
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py")
                  if "Run:  REDIS_URL=" in p.read_text())
MODULES = ["worker_module", "email_worker"]


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs(example: str, redis_url: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / example)], cwd=ROOT,
                          env=_env(redis_url, tmp_path / "home"), capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("module", MODULES)
def test_worker_example_module_imports(module: str, redis_url: str, tmp_path: Path) -> None:
    code = f"import examples.{module} as m; print(type(m.worker).__name__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                          env=_env(redis_url, tmp_path / "home"), capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("Worker")


def test_examples_are_all_covered() -> None:
    names = {p.stem for p in (ROOT / "examples").glob("*.py")} - {"__init__"}
    # The framework recipes run in tests/test_recipes.py (its RECIPES).
    assert names - {e.removesuffix(".py") for e in EXAMPLES} - set(MODULES) == {
        "email_fastapi_app", "fastapi_app", "flask_app", "outbox_sqlalchemy", "django_outbox"}
