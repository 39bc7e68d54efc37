"""Automatic pipelining of script calls: EVALSHA calls from many tasks share pipelines.

The router makes one queue script call per Send and one per delivery outcome, from many
concurrent tasks. Sent one by one, each costs a socket write, a read and a pooled
connection; under load they also exhaust redis-py's connection pool (100 by default).
:class:`AutoPipeline` wraps the client handed to :class:`DurableQueue`: ``evalsha`` calls
are queued and flushed together (at most ``max_batch`` per pipeline); each caller gets its
own reply or error. At most ``max_pipelines`` pipelines are in flight: calls made while
they are out wait for one to come back and then go together, so batches grow with load
(a quiet queue still sends at once; the price is at most one extra round trip).

Every script still runs atomically, and calls one task makes one after another still reach
Redis in that order; nothing else changes, so the queue's guarantees hold as they are.
Other commands (blocking reads, stats) pass straight through to the wrapped client.

Single-node clients only: a Redis Cluster client is used as it is.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from services.core.redis_client import AnyRedis

DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_PIPELINES = 1


class AutoPipeline:
    """A client facade whose ``evalsha`` calls are batched per event-loop turn."""

    def __init__(
        self,
        client: aioredis.Redis,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pipelines: int = DEFAULT_MAX_PIPELINES,
    ) -> None:
        self._client = client
        self._max_batch = max_batch
        self._max_pipelines = max_pipelines
        self._in_flight = 0
        self._pending: list[tuple[Sequence[Any], asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._loading: dict[str | bytes, asyncio.Future[Any]] = {}
        self._connections: list[Any] = []  # idle, still checked out of the client's pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def register_script(self, script: str | bytes) -> BatchedScript:
        return BatchedScript(self, script)

    async def script_load(self, script: str | bytes) -> Any:
        """Load a script once however many callers found it missing (after a Redis restart)."""
        loading = self._loading.get(script)
        if loading is None:
            loading = asyncio.ensure_future(self._client.script_load(script))
            self._loading[script] = loading
            loading.add_done_callback(lambda _: self._loading.pop(script, None))
        return await asyncio.shield(loading)

    async def evalsha(self, *args: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((args, future))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if self._pending and not self._flush_scheduled and self._in_flight < self._max_pipelines:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._pending and self._in_flight < self._max_pipelines:
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            self._in_flight += 1
            task = asyncio.create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        self._schedule()

    async def _send(self, batch: list[tuple[Sequence[Any], asyncio.Future[Any]]]) -> None:
        try:
            replies = await self._round_trip(batch)
        except BaseException as exc:  # the whole round trip failed: every caller sees it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _round_trip(self, batch: list[tuple[Sequence[Any], asyncio.Future[Any]]]) -> list[Any]:
        """Write every EVALSHA of the batch in one packet and read the replies in order.

        What a redis-py pipeline does, minus its generic command packing (~3x slower for
        these 20-30 argument calls; the router's hottest Redis cost).
        """
        pool = self._client.connection_pool
        # Pipelines keep their connections checked out between batches: the pool's checkout
        # and release (locks, timeouts) cost as much as the round trip at a trickle. Closing
        # the client disconnects them like any in-use connection.
        connection = self._connections.pop() if self._connections else await pool.get_connection()
        try:
            await connection.send_packed_command(
                b"".join(pack_evalsha(args) for args, _ in batch), check_health=False
            )
            replies: list[Any] = []
            for _ in batch:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            await connection.disconnect()  # replies may be left unread: never reuse it
            await pool.release(connection)  # the next batch checks out a fresh one
            raise
        self._connections.append(connection)
        return replies


# RESP encodings of short strings seen before: key names, field names, script SHAs and
# constant arguments repeat on every call, so most arguments are one dict lookup. One-off
# strings (ids) pass through too; the cache is emptied when full and refills at once.
_ENCODED: dict[str, bytes] = {}
_ENCODED_MAX = 4096
_ENCODED_MAX_LEN = 80


class BatchedScript:
    """A script called through the batch (``redis-py``'s ``AsyncScript``, minus its per-call
    isinstance checks against a Protocol class): EVALSHA, loaded when Redis lost it."""

    def __init__(self, pipeline: AutoPipeline, script: str | bytes) -> None:
        self._pipeline = pipeline
        self.script = script
        self.sha = hashlib.sha1(script.encode() if isinstance(script, str) else script).hexdigest()

    async def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        try:
            return await self._pipeline.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.sha = await self._pipeline.script_load(self.script)
            return await self._pipeline.evalsha(self.sha, len(keys), *keys, *args)


def pack_evalsha(args: Sequence[Any]) -> bytes:
    """RESP encoding of ``EVALSHA *args`` (str as UTF-8, int, float as repr, bytes as is)."""
    out = [b"*%d\r\n$7\r\nEVALSHA\r\n" % (len(args) + 1)]
    append = out.append
    for arg in args:
        kind = type(arg)
        if kind is str:
            encoded = _ENCODED.get(arg)
            if encoded is None:
                data = arg.encode()
                encoded = b"$%d\r\n%b\r\n" % (len(data), data)
                if len(arg) <= _ENCODED_MAX_LEN:
                    if len(_ENCODED) >= _ENCODED_MAX:
                        _ENCODED.clear()
                    _ENCODED[arg] = encoded
            append(encoded)
            continue
        if kind is bytes:
            data = arg
        elif kind is int:
            data = b"%d" % arg
        elif isinstance(arg, bool):
            raise TypeError("bool is not a valid Redis argument")
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int):
            data = b"%d" % arg
        elif isinstance(arg, float):
            data = repr(arg).encode()
        else:
            data = bytes(arg)
        append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


def batching(client: AnyRedis) -> Any:
    """The client to give the router's queues: auto-pipelined when single-node."""
    if isinstance(client, aioredis.Redis):
        return AutoPipeline(client)
    return client
