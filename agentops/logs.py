"""Logging set-up shared by every `agentops` command: text for people, JSON for machines.

JSON lines carry `time`, `level`, `logger`, `message` and any `extra={...}` fields a
call site adds, so a log pipeline can filter on `agent` or `fault` without parsing
prose.
"""

from __future__ import annotations

import json
import logging
import sys

from agentops.times import format_timestamp
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": format_timestamp(record.created, milliseconds=True),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # kopf logs every handler call at INFO; at thousands of objects that drowns the rest.
    logging.getLogger("kopf.objects").setLevel(max(logging.WARNING, root.level))
    # aiohttp's access log would cost more than the proxy itself on the request path.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
