"""Structured JSON logs on stderr.

Log calls pass ids and counts as ``extra`` fields; no call ever passes a message body, so the
formatter needs no redaction and an SRE can ship every line.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

# Attributes every LogRecord has (and uvicorn's ANSI-coloured duplicate of the message);
# anything else came from ``extra=`` and is emitted as a field.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event message, extra fields, exception."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route every logger to stderr as JSON; call once in ``main``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every reconnect attempt at INFO/ERROR; keep its noise at warnings.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # One line per HTTP request or handshake is access logging, not events: metrics count them.
    for chatty in ("httpx", "websockets.server", "uvicorn.access"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
