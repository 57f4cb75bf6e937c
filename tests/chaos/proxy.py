"""A small TCP fault proxy for the fault-injection suite (not a test module).

``FaultProxy(upstream_port)`` listens on a free loopback port and forwards
every connection to ``127.0.0.1:upstream_port``, on an asyncio loop in a
thread of its own. On command it can:

- ``drop()``: reset every open connection (both sides), as a middlebox
  crash or a NAT timeout would;
- ``blackhole()``: keep every connection open but forward nothing in either
  direction, and accept new connections without ever connecting them
  upstream (a partition: packets vanish, nobody is told);
- ``retarget(port)``: send new connections to another server (a failover
  behind a virtual address); open ones stay with the old server;
- ``heal(drop=False)``: forward again; held bytes flow on (the partition
  healed before TCP gave up), or with ``drop=True`` the stalled connections
  are reset first.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Any


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="fault-proxy")
        self._flowing: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None
        self.port = 0
        self.connections = 0

    # -- control (from any thread)
    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def blackhole(self) -> None:
        self._call(self._set_flowing(False))

    def heal(self, drop: bool = False) -> None:
        if drop:
            self.drop()
        self._call(self._set_flowing(True))

    def retarget(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)

    def drop(self) -> int:
        """Reset every open connection; returns how many sockets were reset."""
        return int(self._call(self._drop()))

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    # -- on the proxy's loop
    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _drop(self) -> int:
        writers = list(self._writers)
        for writer in writers:
            transport = writer.transport
            with contextlib.suppress(Exception):
                sock = transport.get_extra_info("socket")
                if sock is not None:  # RST, not FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    b"\x01\x00\x00\x00\x00\x00\x00\x00")
            transport.abort()
        self._writers.clear()
        return len(writers)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._drop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        self.connections += 1
        self._writers.add(writer)
        try:
            await self._flowing.wait()  # blackholed: accepted, never connected
            if writer.transport.is_closing():
                return
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except (OSError, asyncio.CancelledError):
            self._writers.discard(writer)
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer),
                             return_exceptions=True)
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if not self._flowing.is_set():
                    await self._flowing.wait()  # hold the bytes: nothing gets through
                if writer.transport.is_closing():
                    break
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            # One side ended: end the other too (as a real peer would see a close).
            writer.transport.abort()
