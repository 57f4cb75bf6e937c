"""``pyqueue dashboard``: serve the web dashboard (``pyqueue.web``) with uvicorn.

::

    pyqueue dashboard [--host 127.0.0.1] [--port 8080] [--read-only]
                      [--basic-auth USER:PASSWORD] [--queue NAME ...] [--root-path /admin/queues]

``$PYQUEUE_DASHBOARD_AUTH=USER:PASSWORD`` is the same as ``--basic-auth``
(and keeps the password out of the process list). Listening beyond loopback
without authentication prints a loud warning: anyone who reaches the port can
read job data and act on the queues.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ._cli_admin import UsageError, add_connection_options
from .connection import mask_url

AUTH_ENV = "PYQUEUE_DASHBOARD_AUTH"

OPEN_WARNING = """\
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! WARNING: the pyqueue dashboard listens on {host} WITHOUT AUTHENTICATION.
!! Anyone who can reach port {port} can read job data and retry, remove,
!! drain or obliterate queues. Set --basic-auth USER:PASSWORD (or
!! ${env}), use --read-only, or listen on 127.0.0.1 behind your own login.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"""


def register(sub: Any) -> None:
    """Add the ``dashboard`` command to the ``pyqueue`` parser's subcommands."""
    p = sub.add_parser("dashboard", help="serve the web dashboard (pip install "
                                         "'pyqueue-redis[web]')")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--read-only", action="store_true",
                   help="show everything, change nothing (no action forms; actions refused)")
    p.add_argument("--basic-auth", metavar="USER:PASSWORD", default=None,
                   help=f"require HTTP basic auth (default: ${AUTH_ENV})")
    p.add_argument("--queue", action="append", default=None, metavar="NAME",
                   help="show only this queue (repeatable; default: every queue found)")
    p.add_argument("--root-path", default="",
                   help="the path prefix a reverse proxy serves the dashboard under")
    add_connection_options(p)


def open_warning(host: str, port: int, has_auth: bool) -> str | None:
    """The loud warning for listening beyond loopback without auth, else ``None``."""
    from .web.security import is_loopback

    if has_auth or is_loopback(host):
        return None
    return OPEN_WARNING.format(host=host, port=port, env=AUTH_ENV)


def run(args: argparse.Namespace, url: str) -> int:
    """Serve until Ctrl-C."""
    try:
        import uvicorn

        from .web import create_app
    except ImportError as exc:
        raise UsageError(f"the dashboard needs the web extra: pip install "
                         f"'pyqueue-redis[web]' ({exc})") from None
    basic_auth = args.basic_auth or os.environ.get(AUTH_ENV) or None
    try:
        app = create_app(url, prefix=args.prefix, queues=args.queue,
                         read_only=args.read_only, basic_auth=basic_auth)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    warning = open_warning(args.host, args.port, basic_auth is not None)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    mode = " (read-only)" if args.read_only else ""
    print(f"pyqueue dashboard{mode}: http://{shown_host}:{args.port}{args.root_path}/ "
          f"showing prefix {args.prefix!r} on {mask_url(url)}; Ctrl-C to stop",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, root_path=args.root_path,
                log_level="warning", access_log=False, proxy_headers=False)
    return 0
