"""Structured logs: every record logged while a handler runs carries its invocation's identity.

`setup_logging(level, fmt)` configures the root logger; with fmt="json" each line is one JSON
object (time, level, logger, message, and invocation_id / tenant / service / handler when known),
ready for a log pipeline. Handlers keep using the standard `logging` module.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from typing import Any

FIELDS = ("invocation_id", "tenant", "service", "handler", "attempt")
_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("endure_invocation", default=None)


def bind_invocation(**fields: Any) -> None:
    """Called by the worker inside a handler's task: later records in that task carry these fields."""
    _current.set(fields)


class InvocationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        fields = _current.get()
        if fields:
            for name, value in fields.items():
                if not hasattr(record, name):
                    setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        inv = getattr(record, "invocation_id", None)
        return f"{text} [{inv}]" if inv else text


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(InvocationFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
