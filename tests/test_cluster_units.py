"""Redis Cluster pieces that need no cluster: the URL form, the hash-tag rule,
shard names, and the error for an unreachable cluster."""

from __future__ import annotations

import pytest

from pyqueue import Queue
from pyqueue._cluster import has_hash_tag, key_slot
from pyqueue.connection import mask_url, resolve_url
from pyqueue.errors import ConfigurationError, RedisConnectionError
from pyqueue.sharded import shard_names


@pytest.mark.parametrize("url", ["redis+cluster://127.0.0.1:7000",
                                 "rediss+cluster://u:p@host:7000/0"])
def test_cluster_urls_accepted(url: str) -> None:
    assert resolve_url(url) == url


def test_cluster_url_password_masked() -> None:
    assert mask_url("redis+cluster://u:secret@h:1") == "redis+cluster://u:***@h:1"


def test_unreachable_cluster_is_a_connection_error(unused_tcp_port: int) -> None:
    with pytest.raises(RedisConnectionError, match="Redis Cluster") as info:
        Queue("{q}", connection=f"redis+cluster://:secret@127.0.0.1:{unused_tcp_port}")
    assert "secret" not in str(info.value)


def test_bad_scheme_names_the_cluster_form() -> None:
    with pytest.raises(ConfigurationError, match=r"redis\+cluster://"):
        resolve_url("cluster://h:1")


@pytest.mark.parametrize(("prefix", "name", "tagged"), [
    ("bull", "email", False), ("{bull}", "email", True), ("bull", "{email}", True),
    ("bull", "{}email", False), ("b{", "}x", True), ("bull", "em}ail{", False),
])
def test_hash_tag_rule(prefix: str, name: str, tagged: bool) -> None:
    assert has_hash_tag(prefix, name) is tagged


def test_shard_names_spread_over_the_slots() -> None:
    names = shard_names("mail", 8)
    slots = [key_slot(f"bull:{n}:wait") for n in names]
    assert slots == sorted(slots) and len(set(names)) == 8
    for i, slot in enumerate(slots):  # the middle half of the i-th eighth
        assert i * 2048 + 512 <= slot < (i + 1) * 2048 - 512


async def test_unreachable_cluster_async(unused_tcp_port: int) -> None:
    from pyqueue import AsyncQueue

    queue = AsyncQueue("{q}", connection=f"redis+cluster://:secret@127.0.0.1:{unused_tcp_port}")
    try:
        with pytest.raises(RedisConnectionError) as info:
            await queue.add("a", 1)
        assert "secret" not in str(info.value)
    finally:
        await queue.close()
