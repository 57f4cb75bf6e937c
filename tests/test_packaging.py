"""The wheel carries the Lua scripts: build it, install it in a fresh venv, run a job."""

from __future__ import annotations

import email.parser
import re
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
    wheels = list(dist.glob("pyqueue_redis-*.whl"))
    assert len(wheels) == 1
    import zipfile

    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "pyqueue/lua/moveToActive.lua" in names
    assert "pyqueue/lua/includes/prelude.lua" in names
    assert "pyqueue/py.typed" in names
    assert "pyqueue/web/templates/base.html" in names  # the dashboard's templates
    assert "pyqueue/web/static/dashboard.js" in names  # and its static files

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


def _documented_distribution() -> str:
    """The distribution name of the first ``pip install`` line of getting-started.md,
    checked to be the same in README.md."""
    names = []
    for page in (ROOT / "docs" / "getting-started.md", ROOT / "README.md"):
        match = re.search(r"^pip install [\"']?([A-Za-z0-9_.-]+)", page.read_text(),
                          re.MULTILINE)
        assert match, f"no `pip install NAME` line in {page.name}"
        names.append(match.group(1))
    assert names[0] == names[1], names
    return names[0]


def test_wheel_metadata_name_is_the_documented_one(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                    "--disable-pip-version-check", "-w", str(dist),
                    str(ROOT)], check=True, timeout=300)
    (wheel,) = dist.glob("*.whl")
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        (metadata,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        headers = email.parser.Parser().parsestr(zf.read(metadata).decode())
        (entry_points,) = [n for n in zf.namelist()
                           if n.endswith(".dist-info/entry_points.txt")]
        scripts = zf.read(entry_points).decode()
        names = zf.namelist()
    assert headers["Name"] == _documented_distribution() == "pyqueue-redis"
    assert "demo" in headers.get_all("Provides-Extra", [])
    # The email extra is for production: no SMTP *server* in it.
    email_reqs = [r for r in headers.get_all("Requires-Dist", []) if "extra == 'email'" in r]
    assert email_reqs and not any(r.startswith("aiosmtpd") for r in email_reqs)
    # The import name and the command stay `pyqueue`.
    assert "pyqueue = pyqueue.cli:main" in scripts
    assert "pyqueue/__init__.py" in names


_STALE_INSTALL = re.compile(r"pip install ['\"]?pyqueue(?![-\w])|pyqueue\[")


def test_no_install_hint_names_the_old_distribution() -> None:
    """`pip install pyqueue` installs an unrelated project: no doc or message may say it
    (except where a line warns about exactly that)."""
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "pyqueue").rglob("*.py"),
             *(ROOT / "examples").glob("*.py")]
    stale = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in files
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if _STALE_INSTALL.search(line) and "unrelated" not in line]
    assert stale == []
