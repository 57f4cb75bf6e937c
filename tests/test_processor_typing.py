"""Processors type-check as users write them: mypy (strict) on tests/typing/processors.py.

An ``async def`` processor gets an ``AsyncJob`` (``await job.update_progress(1)``), a
``def`` one a ``Job`` (``job.update_progress(1)``), and a forgotten ``await`` is
flagged (mypy's ``unused-coroutine``, on by default).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SNIPPET = Path(__file__).parent / "typing" / "processors.py"
ROOT = Path(__file__).parents[1]


def expected_errors() -> set[tuple[int, str]]:
    found = set()
    for number, line in enumerate(SNIPPET.read_text().splitlines(), start=1):
        match = re.search(r"# error: ([a-z-]+)$", line)
        if match:
            found.add((number, match.group(1)))
    return found


def test_processors_type_check_and_a_forgotten_await_is_flagged() -> None:
    api = pytest.importorskip("mypy.api")
    out, err, _status = api.run(["--strict", "--python-version", "3.10",
                                 "--config-file", str(ROOT / "pyproject.toml"),
                                 str(SNIPPET)])
    errors = {(int(m.group(1)), m.group(2))
              for m in re.finditer(r"processors\.py:(\d+): error: .*\[([a-z-]+)\]$", out,
                                   re.MULTILINE)}
    assert errors == expected_errors(), out + err
    assert "unused-coroutine" in {code for _, code in errors}  # the forgotten await


async def test_each_executor_takes_only_its_kind_of_job() -> None:
    # The worker makes the job from the same check that picks the executor; the
    # executors narrow the type at run time too, so a mix-up fails loudly.
    from pyqueue._keys import QueueKeys
    from pyqueue._ops import Clock
    from pyqueue.job import AsyncJob, Binding, make_job
    from pyqueue.worker._executors import AsyncExecutor, ThreadExecutor

    def binding(is_async: bool) -> Binding:
        return Binding(QueueKeys("bull", "types"), Clock(), lambda plan: None, is_async=is_async)

    async def async_processor(job: AsyncJob) -> str:
        return f"async {job.id}"

    fields = {"name": "n", "data": "{}"}
    sync_job = make_job(binding(False), "1", fields)
    async_job = make_job(binding(True), "2", fields)
    on_loop = AsyncExecutor(async_processor)
    threads = ThreadExecutor(lambda job: f"sync {job.id}", 1, "types")
    try:
        assert await on_loop.call(async_job) == "async 2"
        assert await threads.call(sync_job) == "sync 1"
        with pytest.raises(TypeError, match="takes an AsyncJob"):
            on_loop.call(sync_job)
        with pytest.raises(TypeError, match="takes a Job"):
            threads.call(async_job)
    finally:
        threads.close()
