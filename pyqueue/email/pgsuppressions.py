"""Suppressions in PostgreSQL (``pip install 'pyqueue-redis[postgres]'``, psycopg 3).

Redis stays the default store; this one is for teams whose suppression
table already lives in their database (the seed's schema)::

    CREATE TABLE email_suppressions (
        address    text PRIMARY KEY,          -- bare, lower-cased
        reason     text NOT NULL,
        source     text NOT NULL,             -- manual, smtp, ses, resend, forget
        created_at timestamptz NOT NULL DEFAULT now()
    );

:meth:`PostgresSuppressions.setup` creates it when missing (the first
connection does too, unless ``create_table=False``). The worker
checks it before every send (``EmailWorker(suppressions=...)`` or
``$EMAIL_SUPPRESSIONS_DSN``), the feedback endpoint writes bounces to it,
and ``pyqueue email suppress ... --postgres DSN`` manages it. A forgotten
address is stored as ``sha256:<digest>`` (see ``forget``). Expiry is a Redis
store feature: the seed's table has no column for it.

One connection (autocommit) serves the store, behind a lock; a broken
connection is replaced once per call before the error is raised.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import Any

from ..errors import ConfigurationError
from .suppressions import Expiry, hashed_field, normalize

try:
    import psycopg
    from psycopg import sql
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("PostgreSQL suppressions need psycopg: "
                      "pip install 'pyqueue-redis[postgres]'") from exc

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class PostgresSuppressions:
    """The suppression list in a PostgreSQL table (asyncio; see the module docstring).

    ``table`` may be ``"name"`` or ``"schema.name"``.
    """

    def __init__(self, dsn: str, *, table: str = "email_suppressions",
                 create_table: bool = True) -> None:
        parts = table.split(".")
        if not dsn or len(parts) > 2 or not all(_IDENT.match(p) for p in parts):
            raise ConfigurationError(f"PostgresSuppressions needs a DSN and a table name "
                                     f"(schema.name), got table {table!r}")
        self.dsn = dsn
        self.table = sql.Identifier(*parts)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._create = create_table

    async def _run(self, query: sql.Composed, params: tuple[Any, ...] = ()) -> list[Any]:
        async with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(self.dsn,
                                                                       autocommit=True)
                    if self._create:
                        await self._conn.execute(self._create_sql())
                        self._create = False
                try:
                    cursor = await self._conn.execute(query, params)
                    return await cursor.fetchall() if cursor.description else \
                        [cursor.rowcount]
                except psycopg.OperationalError:
                    await self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _create_sql(self) -> sql.Composed:
        return sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (address text PRIMARY KEY, reason text NOT NULL, "
            "source text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        ).format(self.table)

    async def setup(self) -> None:
        """Create the table if it does not exist (done at the first connection
        unless ``create_table=False``)."""
        await self._run(self._create_sql())

    async def add(self, address: str, reason: str = "manual", *, expires: Expiry = None,
                  source: str = "manual") -> str:
        """Suppress ``address`` (the latest reason wins); returns its key form."""
        if expires is not None:
            raise ValueError("expiring suppressions need the Redis store")
        addr = normalize(address)
        await self._add_raw(addr, reason, source)
        return addr

    async def _add_raw(self, key: str, reason: str, source: str) -> None:
        await self._run(sql.SQL(
            "INSERT INTO {} (address, reason, source) VALUES (%s, %s, %s) "
            "ON CONFLICT (address) DO UPDATE SET reason = EXCLUDED.reason, "
            "source = EXCLUDED.source, created_at = now()").format(self.table),
            (key, reason, source))

    async def remove(self, address: str) -> bool:
        """Stop suppressing ``address`` (plain or hashed row)."""
        addr = normalize(address)
        (count,) = await self._run(sql.SQL("DELETE FROM {} WHERE address IN (%s, %s)")
                                   .format(self.table), (addr, hashed_field(addr)))
        return bool(count)

    async def suppressed(self, addresses: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Of ``addresses`` (bare, lower-cased), those suppressed, with entries."""
        wanted = list(dict.fromkeys(addresses))
        if not wanted:
            return {}
        by_hash = {hashed_field(a): a for a in wanted}
        rows = await self._run(sql.SQL(
            "SELECT address, reason, source, created_at FROM {} WHERE address = ANY(%s)"
        ).format(self.table), ([*wanted, *by_hash],))
        out: dict[str, dict[str, Any]] = {}
        for key, reason, source, created in rows:
            addr = by_hash.get(key, key)
            out[addr] = {"address": key, "reason": reason, "source": source,
                         "at": created.timestamp(), "expires": None}
        return out

    async def get(self, address: str) -> dict[str, Any] | None:
        """The entry of ``address`` (plain or hashed), or ``None``."""
        addr = normalize(address)
        return (await self.suppressed([addr])).get(addr)

    async def list(self) -> list[dict[str, Any]]:
        """Every entry, sorted by address."""
        rows = await self._run(sql.SQL(
            "SELECT address, reason, source, created_at FROM {} ORDER BY address"
        ).format(self.table))
        return [{"address": a, "reason": r, "source": s, "at": c.timestamp(), "expires": None}
                for a, r, s, c in rows]

    async def forget(self, address: str) -> None:
        """Replace the plain row of ``address`` by a hashed one (it stays suppressed)."""
        addr = normalize(address)
        await self._run(sql.SQL(  # one statement: never both rows, never neither
            "WITH gone AS (DELETE FROM {} WHERE address = %s) "
            "INSERT INTO {} (address, reason, source) VALUES (%s, 'forgotten', 'forget') "
            "ON CONFLICT (address) DO UPDATE SET reason = EXCLUDED.reason, "
            "source = EXCLUDED.source, created_at = now()").format(self.table, self.table),
            (addr, hashed_field(addr)))

    async def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()
