"""pyqueue's Lua scripts: found in ``lua/``, assembled, and gathered into one library.

``--@include name`` lines in a script are replaced by ``lua/includes/name.lua``
when the script is loaded. Scripts run one of two ways, chosen per process
(:data:`._plan.LUA`):

- as functions of one library (``FUNCTION LOAD`` once, then ``FCALL``): the
  includes are evaluated once when the library loads, so a call pays only for
  its own work. The library's name and its functions' names carry a hash of
  its text, so two pyqueue versions on one server never replace each other's.
  A call that finds the library missing (a restart, ``FUNCTION FLUSH``) is
  redone with ``EVAL`` and the library is loaded in the same round trip.
- with ``EVALSHA`` (Redis before 7, a user without ``FCALL``/``FUNCTION``
  rights, or ``PYQUEUE_LUA=eval``): each script is sent whole, its includes
  inlined; the SHA1 is computed locally, so the first call is an EVALSHA and
  no ``SCRIPT LOAD`` round trip is ever needed.

Out of memory: a script marked ``--@deny-oom`` (adds, fetches) is refused
whole while Redis is over ``maxmemory``; every other function is registered
with ``allow-oom``, so finishing, retrying and cleaning up go on as they do
under EVAL (which lets a script that has written keep writing).

Prelude's per-call state is set by its ``begin(keys, argv)``: ``--@begin`` at
prelude's end is that call in a script; a library function makes it first.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources
from pathlib import Path

from ._plan import Script

_INCLUDE = re.compile(r'^--@include\s+"?([\w-]+)"?\s*$', re.MULTILINE)
_BEGIN = re.compile(r"^--@begin\s*$", re.MULTILINE)
#: A script that creates work (adds, fetches) and must be refused whole while
#: Redis is out of memory says ``--@deny-oom``; every other function may run
#: then (finishing, retrying, cleaning up must not be refused half-way: as a
#: script called with EVAL, which Redis lets go on writing once it wrote).
_DENY_OOM = re.compile(r"^--@deny-oom\s*$", re.MULTILINE)


def _lua_dir() -> Path:
    """``pyqueue/lua`` inside an installed wheel, else the checkout's ``lua/``."""
    packaged = resources.files("pyqueue") / "lua"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "lua"


def _assemble(name: str, directory: Path, seen: set[str] | None = None) -> str:
    """The script's text with each include inlined once, at its first mention
    (an include that prelude already brought in is not repeated)."""
    seen = set() if seen is None else seen
    text = (directory / f"{name}.lua").read_text(encoding="utf-8")
    includes = directory / "includes" if directory.name != "includes" else directory

    def include(match: re.Match[str]) -> str:
        part = match.group(1)
        if part in seen:
            return ""
        seen.add(part)
        return _assemble(part, includes, seen)

    return _INCLUDE.sub(include, text)


def script_names() -> list[str]:
    """Every script in ``lua/``, sorted."""
    return sorted(path.stem for path in _lua_dir().glob("*.lua"))


@cache
def _library() -> tuple[str, str]:
    """The library holding every script as a function: ``(text, hash)``.

    Scripts that include the same parts, in the same order, share one
    ``do ... end`` block: the parts, evaluated once when the library loads,
    then one ``redis.register_function`` per script whose body is the script
    without its include lines, after ``begin(KEYS, ARGV)``. So each function
    sees exactly what its script sees under EVAL (same parts, same order),
    and no block holds more locals than its largest script does.
    """
    directory = _lua_dir()
    blocks: dict[str, list[tuple[str, str]]] = {}
    for name in script_names():
        text = (directory / f"{name}.lua").read_text(encoding="utf-8")
        seen: set[str] = set()
        parts = "\n".join(_assemble(m.group(1), directory / "includes", seen)
                          for m in _INCLUDE.finditer(text))
        parts = _BEGIN.sub("", parts)
        blocks.setdefault(parts, []).append((name, _INCLUDE.sub("", text)))
    digest = hashlib.sha1()
    for parts, scripts in blocks.items():
        digest.update(parts.encode())
        for name, body in scripts:
            digest.update(f"\0{name}\0{body}".encode())
    version = digest.hexdigest()[:16]
    lines = [f"#!lua name=pyqueue_{version}"]
    for parts, scripts in blocks.items():
        lines += ["do", parts]
        for name, body in scripts:
            flags = "" if _DENY_OOM.search(body) else ", flags = {'allow-oom'}"
            lines.append(f"redis.register_function{{function_name = "
                         f"'{_function_name(version, name)}'{flags}, callback = "
                         f"function(KEYS, ARGV)\nbegin(KEYS, ARGV)\n{body}\nend}}")
        lines.append("end")
    return "\n".join(lines), version


def _function_name(version: str, name: str) -> str:
    return f"pyqueue_{version}_{name}"


@cache
def load(name: str) -> Script:
    """The script ``lua/<name>.lua`` with its includes inlined, and its
    function in the library."""
    source = _BEGIN.sub("begin(KEYS, ARGV)", _assemble(name, _lua_dir()))
    library, version = _library()
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest(),
                  _function_name(version, name), library)


def library_text() -> str:
    """The text ``FUNCTION LOAD`` takes (for tools that load it ahead of time)."""
    return _library()[0]
