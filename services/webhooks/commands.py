"""``wedmesh dlq webhooks list|replay|purge``: dead letters over gRPC to the webhooks port.

Exit codes: 0 done, 1 bad arguments, 2 the call failed (the status is printed).
Output is one JSON object per line, so it pipes into ``jq``. The port is dialled per
``[client_tls]`` and, with auth on, with the token in ``$WEDMESH_SERVICE_TOKEN``
(``auth.token_env``); replay and purge need one with the ``admin`` scope.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from services.core.channels import missing_token_hint, open_mesh_channel
from services.core.config import MeshConfig
from wedsync.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc

TIMEOUT_S = 30.0


def register(sub: Any, dlq: Any) -> None:
    parser = dlq.add_parser("webhooks", help="webhook events that exhausted their retries")
    actions = parser.add_subparsers(dest="dlq_action", required=True, parser_class=type(parser))
    for action, text in (
        ("list", "list dead letters (oldest first)"),
        ("replay", "move dead letters back to processing"),
        ("purge", "delete dead letters permanently"),
    ):
        p = actions.add_parser(action, help=text)
        p.add_argument("--provider", default="", help="provider id (default: every provider)")
        p.add_argument("--address", help="webhooks gRPC host:port (default: from the config)")
        if action == "list":
            p.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
        else:
            p.add_argument(
                "--id", dest="ids", action="append", default=[], help="dead-letter id (repeatable)"
            )
            p.add_argument("--all", action="store_true", help="every dead letter in scope")
        p.set_defaults(func=run)


def run(args: argparse.Namespace, config: MeshConfig) -> int:
    if args.dlq_action != "list" and not args.ids and not args.all:
        print("wedmesh dlq webhooks: give --id ID (repeatable) or --all", file=sys.stderr)
        return 1
    address = args.address or config.webhooks.address
    try:
        for line in asyncio.run(_call(address, args, config)):
            print(json.dumps(line, sort_keys=True))
    except grpc.aio.AioRpcError as exc:
        print(f"wedmesh dlq webhooks {args.dlq_action}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            print(f"hint: {missing_token_hint(config)}", file=sys.stderr)
        return 2
    return 0


def _dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = MessageToDict(message, preserving_proto_field_name=True)
    return out


async def _call(address: str, args: argparse.Namespace, config: MeshConfig) -> list[dict[str, Any]]:
    async with open_mesh_channel(address, config) as channel:
        stub = webhooks_pb2_grpc.WebhookIntakeServiceStub(channel)
        if args.dlq_action == "list":
            lines: list[dict[str, Any]] = []
            token = ""
            while len(lines) < args.limit:
                page = await stub.ListDeadLetters(
                    webhooks_pb2.ListDeadLettersRequest(
                        provider_id=args.provider,
                        page_size=min(1000, args.limit - len(lines)),
                        page_token=token,
                    ),
                    timeout=TIMEOUT_S,
                )
                lines += [_dict(letter) for letter in page.dead_letters]
                token = page.next_page_token
                if not token:
                    break
            return lines
        if args.dlq_action == "replay":
            replayed = await stub.ReplayDeadLetters(
                webhooks_pb2.ReplayDeadLettersRequest(provider_id=args.provider, ids=args.ids),
                timeout=TIMEOUT_S,
            )
            return [_dict(replayed)]
        purged = await stub.PurgeDeadLetters(
            webhooks_pb2.PurgeDeadLettersRequest(provider_id=args.provider, ids=args.ids, all=args.all),
            timeout=TIMEOUT_S,
        )
        return [_dict(purged)]
