"""``wedmesh dlq router list|replay|purge``: the router's dead letters from a terminal.

Works straight on Redis (the config's ``redis.url``), through the same code the
RouterService RPCs use, so it needs no running registry process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from services.core.config import MeshConfig
from services.core.errors import MeshError
from services.core.queue import DurableQueue
from services.core.redis_client import connect
from services.registry.admin import RouterAdmin
from services.registry.codec import queue_name

MAX_PAYLOAD_PREVIEW = 80


def register(sub: Any, dlq: Any) -> None:
    router = dlq.add_parser("router", help="dead letters of the router's per-service queues")
    actions = router.add_subparsers(dest="dlq_action", required=True)
    listing = actions.add_parser("list", help="list dead letters, oldest first (JSON lines)")
    listing.add_argument("--service", default="", help="target service (default: all)")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.set_defaults(func=_list)
    replay = actions.add_parser("replay", help="queue dead letters again (attempts restart)")
    replay.add_argument("--service", default="", help="target service (default: all)")
    replay.add_argument("ids", nargs="*", help="dead-letter ids (default: every one in scope)")
    replay.set_defaults(func=_replay)
    purge = actions.add_parser("purge", help="delete dead letters for good")
    purge.add_argument("--service", default="", help="target service (default: all)")
    purge.add_argument("--all", action="store_true", help="every dead letter in scope")
    purge.add_argument("ids", nargs="*", help="dead-letter ids")
    purge.set_defaults(func=_purge)


def _run(config: MeshConfig, work: Any) -> int:
    async def main() -> int:
        client = connect(config.redis)
        try:
            admin = RouterAdmin(client, lambda service: DurableQueue(client, queue_name(service)))
            return int(await work(admin))
        finally:
            await client.aclose()

    try:
        return asyncio.run(main())
    except MeshError as exc:
        print(f"wedmesh dlq router: {exc.message}")
        return 1


def _list(args: argparse.Namespace, config: MeshConfig) -> int:
    async def work(admin: RouterAdmin) -> int:
        letters, _ = await admin.list_dead(args.service, args.limit, "")
        for letter in letters:
            row = {
                "id": letter.id,
                "message_id": letter.message.message_id,
                "to_service": letter.message.to_service,
                "event_type": letter.message.event_type,
                "attempts": letter.attempts,
                "last_error": letter.last_error,
                "last_instance_id": letter.last_instance_id,
                "failed_at": letter.failed_at.ToJsonString(),
                "payload_bytes": len(letter.message.payload),
            }
            print(json.dumps(row))
        return 0

    return _run(config, work)


def _replay(args: argparse.Namespace, config: MeshConfig) -> int:
    async def work(admin: RouterAdmin) -> int:
        done, missing, count = await admin.replay(args.service, args.ids)
        print(json.dumps({"replayed": count, "replayed_ids": done, "not_found_ids": missing}))
        return 1 if missing else 0

    return _run(config, work)


def _purge(args: argparse.Namespace, config: MeshConfig) -> int:
    if not args.ids and not args.all:
        print("wedmesh dlq router purge: give dead-letter ids, or --all")
        return 1

    async def work(admin: RouterAdmin) -> int:
        done, missing, count = await admin.purge(args.service, args.ids, args.all)
        print(json.dumps({"purged": count, "purged_ids": done, "not_found_ids": missing}))
        return 1 if missing else 0

    return _run(config, work)
