"""pyqueue's web dashboard: ``create_app(...)``, an ASGI app (Starlette + Jinja2,
server-rendered, no JavaScript build) that shows every queue under a prefix, pyqueue's and
BullMQ's, and acts on them. Needs ``pip install 'pyqueue-redis[web]'``; also served by
``pyqueue dashboard``. See docs/dashboard.md."""

from __future__ import annotations

try:
    import jinja2 as _jinja2  # noqa: F401
    import starlette as _starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("pyqueue.web needs the web extra: pip install 'pyqueue-redis[web]' "
                      f"({exc})") from exc

from .app import create_app

__all__ = ["create_app"]
