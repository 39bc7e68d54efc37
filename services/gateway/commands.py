"""``wedmesh gateway services|health <service_id>``: the gateway's view of its upstreams.

Exit codes: 0 done, 2 the call failed (the status is printed). Output is JSON (one
object per line for ``services``), so it pipes into ``jq``. Never shows credentials.
The port is dialled per ``[client_tls]`` and, with auth on, with the token in
``$WEDMESH_SERVICE_TOKEN`` (``auth.token_env``).
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
from wedsync.gateway.v1 import gateway_pb2, gateway_pb2_grpc

TIMEOUT_S = 10.0


def register(sub: Any, dlq: Any) -> None:
    parser = sub.add_parser("gateway", help="upstreams of the integration gateway: list, health")
    actions = parser.add_subparsers(dest="gateway_action", required=True, parser_class=type(parser))
    services = actions.add_parser("services", help="every configured upstream with its status")
    health = actions.add_parser("health", help="detailed health of one upstream (per instance)")
    health.add_argument("service_id", help="upstream id, e.g. stripe_payments")
    for p in (services, health):
        p.add_argument("--address", help="gateway gRPC host:port (default: from the config)")
        p.set_defaults(func=run)


def run(args: argparse.Namespace, config: MeshConfig) -> int:
    address = args.address or config.gateway.address
    try:
        for line in asyncio.run(_call(address, args, config)):
            print(json.dumps(line, sort_keys=True))
    except grpc.aio.AioRpcError as exc:
        print(f"wedmesh gateway {args.gateway_action}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            print(f"hint: {missing_token_hint(config)}", file=sys.stderr)
        return 2
    return 0


async def _call(address: str, args: argparse.Namespace, config: MeshConfig) -> list[dict[str, Any]]:
    async with open_mesh_channel(address, config) as channel:
        stub = gateway_pb2_grpc.IntegrationGatewayServiceStub(channel)
        if args.gateway_action == "services":
            reply = await stub.ListServices(gateway_pb2.ListServicesRequest(), timeout=TIMEOUT_S)
            return [_dict(s) for s in reply.services]
        health = await stub.GetServiceHealth(
            gateway_pb2.GetServiceHealthRequest(service_id=args.service_id), timeout=TIMEOUT_S
        )
        return [_dict(health.health)]


def _dict(message: Any) -> dict[str, Any]:
    out: dict[str, Any] = MessageToDict(message, preserving_proto_field_name=True)
    return out
