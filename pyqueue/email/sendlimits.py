"""Per-recipient, per-user and per-type sending limits: sliding windows in Redis.

``SendLimit("otp-per-address", 3, 600, types=("otp",))`` allows at most 3
mails of type ``otp`` to one address in any 10 minutes;
``SendLimit("register-otp", 20, 1, per="global", types=("register-otp",))``
at most 20 a second across every worker. Every limit a mail falls under is
checked and taken in one Lua script (``lua/checkSendLimits.lua``), so
concurrent workers cannot overshoot. A mail over a limit is moved to
``delayed`` until the window frees a slot (``on_limit="delay"``, the
default: one wake-up, no polling) or completed as ``dropped`` with the
rule's name (``on_limit="drop"``: an OTP nobody will wait for).

A mail's ``type`` and ``user_id`` come from its job data
(``enqueue_email(..., mail_type="otp", user_id="42")``). Windows are keyed
by a digest of the address or user id, never the plain value. A slot is
used by each send attempt (a retried send counts again).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from .. import _ops
from .. import _scripts as S
from .._keys import QueueKeys
from .._runner import run_async
from ..connection import AsyncClient
from .message import EmailData
from .suppressions import address_digest

PER = ("recipient", "user", "global")
ON_LIMIT = ("delay", "drop")
_RULE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class SendLimit:
    """At most ``limit`` mails per ``window`` seconds, per recipient address
    (``per="recipient"``), per ``user_id`` (``"user"``) or in total
    (``"global"``), for mails whose ``type`` is in ``types`` (``None``: all)."""

    name: str
    limit: int
    window: float
    per: str = "recipient"
    types: tuple[str, ...] | None = None
    on_limit: str = "delay"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _RULE.match(self.name):
            raise ValueError(f"limit name must be 1-64 of A-Z a-z 0-9 _ . -, got {self.name!r}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"limit must be an int >= 1, got {self.limit!r}")
        if not isinstance(self.window, int | float) or not 0.001 <= self.window <= 30 * 86400:
            raise ValueError(f"window must be 0.001 to 30 days in seconds, got {self.window!r}")
        if self.per not in PER:
            raise ValueError(f"per must be one of {PER}, got {self.per!r}")
        if self.on_limit not in ON_LIMIT:
            raise ValueError(f"on_limit must be one of {ON_LIMIT}, got {self.on_limit!r}")
        if self.types is not None:
            object.__setattr__(self, "types", tuple(self.types))

    @property
    def window_ms(self) -> int:
        """The window in milliseconds."""
        return max(int(self.window * 1000), 1)

    def subjects(self, data: EmailData, recipients: Sequence[str]) -> list[str]:
        """The windows of this rule a mail falls under (digests, or ``*``)."""
        if self.types is not None and data.get("type") not in self.types:
            return []
        if self.per == "global":
            return ["*"]
        if self.per == "user":
            user = data.get("user_id")
            return [address_digest("user:" + user)] if user else []
        return [address_digest(r) for r in dict.fromkeys(recipients)]


@dataclass(frozen=True)
class OverLimit:
    """Why a mail may not go now: the ``rule`` and how long until it may."""

    rule: SendLimit
    wait_ms: int


class SendLimits:
    """The limits of one queue, checked and taken atomically in Redis."""

    def __init__(self, client: AsyncClient, keys: QueueKeys,
                 limits: Sequence[SendLimit], *, clock: _ops.Clock | None = None) -> None:
        names = [limit.name for limit in limits]
        if len(set(names)) != len(names):
            raise ValueError(f"limit names must be unique, got {names}")
        self.client = client
        self.keys = keys
        self.limits = list(limits)
        self.clock = clock or _ops.Clock()

    async def take(self, job_id: str, data: EmailData,
                   recipients: Sequence[str]) -> OverLimit | None:
        """Take a slot in every window the mail falls under; ``None`` when it may
        go now, else what stopped it (and nothing was taken)."""
        windows: list[tuple[str, str, int, int]] = []
        rules: list[SendLimit] = []
        for limit in self.limits:
            for subject in limit.subjects(data, recipients):
                windows.append((limit.name, subject, limit.limit, limit.window_ms))
                rules.append(limit)
        if not windows:
            return None
        member = f"{job_id}:{uuid.uuid4().hex[:12]}"
        build = partial(S.check_send_limits, self.keys, windows=windows, member=member)
        reply = await run_async(self.client, _ops.simple(self.clock, build,
                                                         op="check_send_limits"))
        wait_ms, index = S.decode_send_limits(reply)
        if not wait_ms:
            return None
        return OverLimit(rules[index - 1], wait_ms)
