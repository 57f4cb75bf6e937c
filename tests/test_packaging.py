"""The wheel carries the Lua scripts: build it, install it in a fresh venv, run a job."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

JOB = textwrap.dedent(
    """
    import asyncio, sys
    import pyqueue
    from pyqueue import Queue, Worker

    assert "site-packages" in pyqueue.__file__, pyqueue.__file__
    url, name = sys.argv[1], sys.argv[2]
    with Queue(name, connection=url) as q:
        job = q.add("packaged", {"n": 20})

    async def main():
        async def double(job):
            return job.data["n"] * 2
        async with Worker(name, double, connection=url):
            with Queue(name, connection=url) as q:
                return await asyncio.to_thread(
                    q.get_job(job.id).wait_until_finished, 10)

    print("result", asyncio.run(main()))
    """
)


def test_wheel_ships_lua_and_runs_a_job(tmp_path: Path, redis_url: str, queue_name: str) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                    "--disable-pip-version-check", "-w", str(dist), str(ROOT)],
                   check=True, timeout=300)
    wheels = list(dist.glob("pyqueue-*.whl"))
    assert len(wheels) == 1
    import zipfile

    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "pyqueue/lua/moveToActive.lua" in names
    assert "pyqueue/lua/includes/prelude.lua" in names
    assert "pyqueue/py.typed" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", str(wheels[0])], check=True, timeout=600)
    script = tmp_path / "job.py"
    script.write_text(JOB)
    out = subprocess.run([str(python), str(script), redis_url, queue_name], check=True,
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.stdout.strip().endswith("result 40"), out.stdout + out.stderr
