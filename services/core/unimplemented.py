"""Servicers for RPCs whose issue has not landed yet: a clear UNIMPLEMENTED, never a hang."""

from __future__ import annotations

from typing import Any

from services.core.errors import Unimplemented


def unimplemented_servicer(base: type, service_name: str, arrives_with: str) -> Any:
    """An instance of ``base`` (a generated ``*Servicer``) whose every RPC says when it lands."""

    def make(rpc: str) -> Any:
        async def method(self: Any, request: Any, context: Any) -> Any:
            raise Unimplemented(
                f"{service_name}/{rpc} is not implemented yet; it arrives with {arrives_with}"
            )

        method.__name__ = rpc
        return method

    rpcs = [name for name, fn in vars(base).items() if callable(fn) and not name.startswith("_")]
    return type(f"Unimplemented{base.__name__}", (base,), {rpc: make(rpc) for rpc in rpcs})()
