"""``wedmesh``: run the mesh, run one service, probe a gRPC port.

Usage errors exit with 1 (as grpc_health_probe does), not argparse's usual 2, so that
``wedmesh probe`` keeps grpc_health_probe's exit codes exactly.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, NoReturn

from services.core import probe as probe_mod
from services.core.config import ConfigError, MeshConfig, load_config, with_overrides
from services.core.logs import configure_logging
from services.core.settings_base import ClientTls

SERVICES = ("registry", "gateway", "webhooks", "shim")
SET_HELP = "override any config key, e.g. --set gateway.port=6000 (repeatable)"
# Each area may add commands: ``services/<area>/commands.py`` defines
# ``register(sub, dlq)``, adding parsers to the top level (``sub``) or under ``wedmesh dlq``
# (``dlq``), each with ``set_defaults(func=...)``; ``func(args, config) -> int`` runs it.
COMMAND_MODULES = ("services.gateway.commands", "services.webhooks.commands", "services.registry.commands")
PROBE_EXIT_CODES = """exit codes (the same as grpc_health_probe's):
  0  SERVING
  1  bad arguments
  2  connection failed
  3  RPC failed (timeout, unknown service, no health service)
  4  answered, but not SERVING"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(probe_mod.BAD_ARGUMENTS, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wedmesh", description="WedSync mesh: gateway, webhook intake, registry/router")
    parser.add_argument(
        "--config", type=Path, help="TOML config file (default: $WEDMESH_CONFIG, else the example)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("up", help="start Redis (unless REDIS_URL is set) and every service")
    up.add_argument("--redis-url", help="use this Redis instead of starting a private one")
    up.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)

    serve = sub.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument("--host", help="address to bind")
    serve.add_argument("--port", type=int, help="port to listen on")
    serve.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (0: off; gRPC services)")
    serve.add_argument("--redis-url", help="Redis URL (overrides REDIS_URL and the config)")
    serve.add_argument("--intake-address", help="shim only: webhooks intake gRPC address")
    serve.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)

    pr = sub.add_parser(
        "probe",
        help="gRPC health check (grpc_health_probe exit codes)",
        description=PROBE_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pr.add_argument("address", help="host:port")
    pr.add_argument("--service", default="", help="service name to check (default: the server as a whole)")
    pr.add_argument("--timeout", type=float, default=1.0, help="RPC timeout in seconds (default 1)")
    pr.add_argument(
        "--connect-timeout", type=float, default=1.0, help="connect timeout in seconds (default 1)"
    )
    pr.add_argument("--tls", action="store_true", help="use TLS")
    pr.add_argument("--tls-ca-cert", type=Path, help="CA certificate (default: system roots)")
    pr.add_argument("--tls-client-cert", type=Path, help="client certificate for mutual TLS")
    pr.add_argument("--tls-client-key", type=Path, help="client private key for mutual TLS")
    pr.add_argument("--tls-server-name", help="override the name checked in the server certificate")
    token = sub.add_parser("token", help="issue a caller token (signed with $WEDMESH_AUTH_SECRETS)")
    token.add_argument("--service", required=True, help="the calling service's name")
    token.add_argument("--scope", action="append", default=[], help="a scope (repeatable), e.g. admin")
    token.add_argument("--ttl", type=float, default=3600.0, help="lifetime in seconds (default 3600)")
    token.set_defaults(func=_issue_token)

    dlq = sub.add_parser("dlq", help="dead letters: list, replay, purge")
    dlq_sub = dlq.add_subparsers(dest="dlq_target", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(sub, dlq_sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "probe":
        return _probe(args)
    try:
        config = load_config(args.config)
        config = with_overrides(config, _flag_overrides(args))
    except ConfigError as exc:
        print(f"wedmesh: {exc}", file=sys.stderr)
        return 1
    configure_logging(
        config.logging.level,
        config.logging.json_format,
        process=args.service if args.command == "serve" else "up",
    )
    if args.command == "up":
        from services.core.supervisor import run_up

        return run_up(config, args.config, _set_pairs(args))
    try:
        if args.command == "serve":
            return _serve(args.service, config)
        result: int = args.func(args, config)
        return result
    except ConfigError as exc:
        print(f"wedmesh: {exc}", file=sys.stderr)
        return 1


def _set_pairs(args: argparse.Namespace) -> dict[str, str]:
    """``--set a.b=c`` pairs; a malformed one is a ConfigError naming it."""
    pairs: dict[str, str] = {}
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or " " in key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. gateway.port=6000")
        pairs[key.strip()] = value
    if getattr(args, "redis_url", None):
        pairs["redis.url"] = args.redis_url
    return pairs


def _flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = dict(_set_pairs(args))
    if args.command == "serve":
        for flag, key in (("host", "host"), ("port", "port"), ("metrics_port", "metrics_port")):
            value = getattr(args, flag)
            if value is not None:
                if args.service == "shim" and key == "metrics_port":
                    continue  # the shim serves /metrics on its own port
                out[f"{args.service}.{key}"] = value
        if args.intake_address:
            out["shim.intake_address"] = args.intake_address
    return out


def _serve(service: str, config: MeshConfig) -> int:
    if service == "shim":
        from services.core.runner import loop_factory
        from services.webhooks.shim import run_shim

        with asyncio.Runner(loop_factory=loop_factory("shim")) as runner:
            runner.run(run_shim(config))
        return 0
    from services.core.runner import serve_grpc_process
    from services.core.server import BindError

    try:
        serve_grpc_process(service, config)
    except BindError as exc:
        print(f"wedmesh serve {service}: {exc}", file=sys.stderr)
        return 1
    return 0


def _probe(args: argparse.Namespace) -> int:
    if args.timeout <= 0 or args.connect_timeout <= 0:
        print("error: --timeout and --connect-timeout must be greater than zero", file=sys.stderr)
        return probe_mod.BAD_ARGUMENTS
    tls_files = (args.tls_ca_cert, args.tls_client_cert, args.tls_client_key)
    if not args.tls and (any(tls_files) or args.tls_server_name):
        print("error: --tls-* options need --tls", file=sys.stderr)
        return probe_mod.BAD_ARGUMENTS
    if bool(args.tls_client_cert) != bool(args.tls_client_key):
        print("error: --tls-client-cert and --tls-client-key go together", file=sys.stderr)
        return probe_mod.BAD_ARGUMENTS
    tls = (
        ClientTls(
            ca_file=_path(args.tls_ca_cert),
            cert_file=_path(args.tls_client_cert),
            key_file=_path(args.tls_client_key),
            server_name=args.tls_server_name,
        )
        if args.tls
        else None
    )
    result = probe_mod.probe(
        args.address,
        args.service,
        connect_timeout=args.connect_timeout,
        rpc_timeout=args.timeout,
        tls=tls,
    )
    print(result.message, file=sys.stdout if result.code == probe_mod.OK else sys.stderr)
    return result.code


def _issue_token(args: argparse.Namespace, config: MeshConfig) -> int:
    from services.core.config import build_authenticator

    authenticator = build_authenticator(config.auth.model_copy(update={"enabled": True}))
    assert authenticator is not None
    if args.ttl <= 0:
        print("error: --ttl must be greater than zero", file=sys.stderr)
        return 1
    print(authenticator.issue(args.service, args.scope, args.ttl))
    return 0


def _path(value: Path | None) -> str | None:
    return str(value) if value is not None else None


if __name__ == "__main__":
    sys.exit(main())
