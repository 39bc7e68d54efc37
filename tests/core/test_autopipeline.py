"""AutoPipeline: batched EVALSHA keeps each caller's own reply, error and script loading."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from services.core.autopipeline import AutoPipeline

# AutoPipeline wraps single-node clients only; on a cluster the router uses the cluster client as is.
pytestmark = pytest.mark.single_redis


async def test_concurrent_calls_share_pipelines_and_get_their_own_replies(redis_url: str) -> None:
    """Hundreds of concurrent calls of a script Redis does not know yet each get their own result."""
    client = aioredis.Redis.from_url(redis_url)
    piped = AutoPipeline(client)
    incr = piped.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    sent = 0
    original = client.pipeline

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal sent
        sent += 1
        return original(*args, **kwargs)  # type: ignore[arg-type]

    client.pipeline = counting  # type: ignore[method-assign]
    try:
        replies = await asyncio.gather(*(incr(keys=["wm:test:{ap}:n"], args=[1]) for _ in range(300)))
        assert sorted(int(r) for r in replies) == list(range(1, 301))
        assert sent < 300
    finally:
        await client.aclose()


async def test_one_failing_script_does_not_fail_the_others(redis_url: str) -> None:
    """A script error reaches only its caller; the script is (re)loaded after SCRIPT FLUSH."""
    client = aioredis.Redis.from_url(redis_url)
    piped = AutoPipeline(client)
    ok = piped.register_script("return 1")
    bad = piped.register_script("return redis.error_reply('boom')")
    try:
        await client.script_flush()
        results = await asyncio.gather(ok(), bad(), ok(), return_exceptions=True)
        assert results[0] == 1 and results[2] == 1
        assert isinstance(results[1], redis.exceptions.ResponseError)
        with pytest.raises(redis.exceptions.ResponseError, match="boom"):
            await bad()
    finally:
        await client.aclose()
