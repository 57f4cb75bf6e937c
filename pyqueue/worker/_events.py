"""Dispatch of the worker's local events (``worker.on``) and of its hooks, so that a failing
listener never breaks the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any, Literal, get_args

from ..errors import ConfigurationError, InvalidJobOptionsError
from .hooks import HOOK_METHODS, WorkerHooks

logger = logging.getLogger("pyqueue.worker")

#: The names ``worker.on`` accepts.
WorkerEvent = Literal["active", "progress", "completed", "failed", "stalled", "error",
                      "drained", "closed", "lock_lost"]
EVENTS: tuple[str, ...] = get_args(WorkerEvent)

Hook = Callable[..., None]


class LocalEvents:
    """The listeners of one worker's local events."""

    def __init__(self, name: str) -> None:
        self._name = name
        #: The listeners by event; hot call sites test it to skip :meth:`emit`
        #: (a call per job) when nobody listens.
        self.listeners: dict[str, list[Callable[..., Any]]] = {e: [] for e in EVENTS}
        self.loop: asyncio.AbstractEventLoop | None = None

    def add(self, event: str, callback: Callable[..., Any]) -> None:
        """Register ``callback`` for ``event`` (a name of :data:`WorkerEvent`)."""
        if event not in self.listeners:
            raise InvalidJobOptionsError(f"unknown worker event {event!r}; known: {EVENTS}")
        if not callable(callback):
            raise InvalidJobOptionsError(f"worker event callback must be callable, "
                                         f"got {callback!r}")
        self.listeners[event].append(callback)

    def emit(self, event: str, *args: Any) -> None:
        """Call ``event``'s listeners (on the loop); awaitables run as tasks."""
        for callback in self.listeners.get(event, ()):
            try:
                result = callback(*args)
                if result is not None and inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    task.add_done_callback(self._callback_done)
            except Exception:
                logger.exception("worker %s: %r listener raised", self._name, event)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the worker's loop (from any thread)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(fn, *args)

    def emit_threadsafe(self, event: str, *args: Any) -> None:
        """:meth:`emit` from another thread."""
        self.call_soon(self.emit, event, *args)

    def _callback_done(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("worker %s: async listener raised: %r", self._name, task.exception())


class HookSet:
    """The hooks' overridden methods, per lifecycle point: an attribute per point
    holding a tuple of bound methods (empty when no hook overrides it, so the
    worker skips the point with one truth test)."""

    on_worker_start: tuple[Hook, ...]
    on_worker_stop: tuple[Hook, ...]
    on_fetch: tuple[Hook, ...]
    before_process: tuple[Hook, ...]
    after_process: tuple[Hook, ...]
    on_completed: tuple[Hook, ...]
    on_failed: tuple[Hook, ...]
    on_retry: tuple[Hook, ...]
    on_stalled: tuple[Hook, ...]

    def __init__(self, name: str, hooks: Iterable[WorkerHooks]) -> None:
        self._name = name
        self.hooks: tuple[WorkerHooks, ...] = ()
        self.add(hooks)

    def add(self, hooks: Iterable[WorkerHooks]) -> None:
        """Add ``hooks`` after the ones there (the worker's parts share this object,
        so they see them at once)."""
        added = tuple(hooks)
        for hook in added:
            if not isinstance(hook, WorkerHooks):
                raise ConfigurationError(
                    f"hooks must be WorkerHooks instances, got {hook!r}")
        self.hooks += added
        for method in HOOK_METHODS:
            base = getattr(WorkerHooks, method)
            setattr(self, method, tuple(
                getattr(hook, method) for hook in self.hooks
                if getattr(type(hook), method, base) is not base))

    def call(self, methods: tuple[Hook, ...], *args: Any) -> None:
        """Call each of ``methods``; an exception is logged and ignored."""
        for method in methods:
            try:
                method(*args)
            except Exception:
                self.failed(method)

    def failed(self, method: Hook) -> None:
        """Log the exception a hook method raised (call from its ``except``);
        hot call sites loop over the methods themselves and call this."""
        logger.exception("worker %s: hook %s raised", self._name,
                         getattr(method, "__qualname__", method))
