"""A throwaway local Redis Cluster for tests: :class:`LocalRedisCluster`."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

from .._server import Backoff, find_redis_server, free_port
from ..errors import RedisConnectionError
from .server import RedisServer

__all__ = ["LocalRedisCluster"]


def redis_cli() -> str:
    """The ``redis-cli`` beside ``redis-server``, else the one on ``PATH``;
    :class:`RedisConnectionError` when there is none."""
    beside = Path(find_redis_server()).with_name("redis-cli")
    found = str(beside) if beside.exists() else shutil.which("redis-cli")
    if found is None:
        raise RedisConnectionError(
            "a local Redis Cluster is made with `redis-cli --cluster create`, and no "
            "redis-cli was found (apt-get install redis-tools, or brew install redis)")
    return found


class LocalRedisCluster:
    """``masters`` primaries with ``replicas`` replicas each, all real
    ``redis-server --cluster-enabled yes`` processes on free ports of
    ``127.0.0.1`` (:class:`RedisServer` each, no persistence), joined by
    ``redis-cli --cluster create``; :meth:`start` returns once every node says
    ``cluster_state:ok`` and knows every slot's primary. ::

        with LocalRedisCluster() as cluster:
            queue = Queue("{email}", connection=cluster.url)

    ``node_timeout_ms`` is ``cluster-node-timeout``: how long a primary may be
    silent before its replica takes over (kept short for tests).
    """

    def __init__(self, *, masters: int = 3, replicas: int = 1,
                 node_timeout_ms: int = 1000) -> None:
        if masters < 3:
            raise ValueError("a Redis Cluster needs at least 3 primaries")
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[RedisServer] = []

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:PORT`` of the first node (pyqueue's
        cluster URL form; the other nodes are discovered from it)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    @property
    def ports(self) -> list[int]:
        """The nodes' ports, primaries first (as created)."""
        return [node.port for node in self.nodes]

    def start(self, timeout: float = 30.0) -> None:
        """Start every node, create the cluster and wait until it serves."""
        cli = redis_cli()  # before any node starts
        try:
            self._create(cli, timeout)
        except BaseException:
            self.stop()
            raise

    def _create(self, cli: str, timeout: float) -> None:
        for _ in range(self.masters * (1 + self.replicas)):
            node = RedisServer(extra_args=[
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                # The bus port defaults to port + 10000, which may not exist or be taken.
                "--cluster-port", str(free_port()),
                "--cluster-replica-validity-factor", "0",
            ])
            self.nodes.append(node)
            node.start()
        created = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False)
        if created.returncode != 0:
            tail = created.stdout.decode(errors="replace")[-2000:]
            raise RedisConnectionError(f"redis-cli --cluster create failed:\n{tail}")
        self.wait_ok(timeout)

    def _cluster_info(self, node: RedisServer) -> dict[str, str]:
        import redis

        with redis.Redis(port=node.port, socket_timeout=2, decode_responses=True) as client:
            text: str = client.execute_command("CLUSTER", "INFO")
        pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
        return {k: v.strip() for k, v in pairs}

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every running node reports ``cluster_state:ok`` with all
        16384 slots assigned and ``masters`` primaries serving slots."""
        deadline = time.monotonic() + timeout
        backoff = Backoff()
        last = ""
        while True:
            try:
                infos = [self._cluster_info(n) for n in self.nodes if n.running]
                if all(i.get("cluster_state") == "ok" and i.get("cluster_slots_ok") == "16384"
                       and i.get("cluster_size") == str(self.masters) for i in infos):
                    return
                last = repr(infos[:1])
            except Exception as exc:  # a node still starting
                last = repr(exc)
            if time.monotonic() >= deadline:
                raise RedisConnectionError(f"the cluster did not become ok within "
                                           f"{timeout}s: {last}")
            backoff.wait()

    def primary_for(self, key: str) -> RedisServer:
        """The node that is primary for ``key``'s slot now."""
        import redis

        running = next(n for n in self.nodes if n.running)
        with redis.Redis(port=running.port, socket_timeout=2) as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    port = int(primary[1])
                    return next(n for n in self.nodes if n.port == port)
        raise RedisConnectionError(f"no primary serves the slot of {key!r}")

    def failover(self, key: str, timeout: float = 30.0) -> RedisServer:
        """``CLUSTER FAILOVER`` on a replica of ``key``'s primary (a graceful
        hand-over: the replica catches up first, then the two swap roles);
        returns the new primary once every node sees it."""
        import redis

        old = self.primary_for(key)
        with redis.Redis(port=old.port, socket_timeout=2, decode_responses=True) as client:
            my_id = client.execute_command("CLUSTER", "MYID")
            replicas = client.execute_command("CLUSTER", "REPLICAS", my_id)
        if not replicas:
            raise RedisConnectionError(f"the primary of {key!r} has no replica")
        port = int(replicas[0].split()[1].split("@")[0].rsplit(":", 1)[1])
        new = next(n for n in self.nodes if n.port == port)
        with redis.Redis(port=new.port, socket_timeout=2) as client:
            client.execute_command("CLUSTER", "FAILOVER")
        deadline = time.monotonic() + timeout
        backoff = Backoff()
        while self.primary_for(key).port != new.port:
            if time.monotonic() >= deadline:
                raise RedisConnectionError(f"the failover of {key!r} did not finish "
                                           f"within {timeout}s")
            backoff.wait()
        self.wait_ok(timeout)
        return new

    def stop(self) -> None:
        """Stop every node (safe to call twice)."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop(timeout=5.0)

    def __enter__(self) -> LocalRedisCluster:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
