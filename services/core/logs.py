"""JSON logs with a request id.

Every line is one JSON object: time, level, logger, message, the request id of the RPC
or HTTP request being served (a context variable set by the interceptors), and any
``extra={...}`` fields. Payloads and secrets are never logged: callers pass ids, not
bodies, and secrets are :class:`pydantic.SecretStr`, whose ``str`` is masked.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

from services.core.ids import unique_id

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured duplicate of msg
}


class Throttle:
    """At most one "yes" per ``interval_s`` per key: one warning line per interval about a
    condition that can repeat per request (a full queue, a refused signature, a connection
    limit), not one per request. Keys must come from a bounded set (configured ids)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def due(self, key: str = "") -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            return False
        self._last[key] = now
        return True


def new_request_id() -> str:
    return unique_id()


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the process name, request id and extra fields."""

    def __init__(self, process: str = "") -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            **({"process": self.process} if self.process else {}),
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", json_format: bool = True, process: str = "") -> None:
    """Install the one handler on the root logger (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(process)
        if json_format
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
