"""Logging for the bot: our own loggers at the chosen level, libraries kept quieter,
every line tagged with the id of the request or update it belongs to.

At DEBUG, python-telegram-bot logs every update it receives and aiosqlite every SQL
parameter; those carry NIKs and names, which must never reach a log (UU PDP). httpx
logs request URLs at INFO, and Telegram URLs carry the bot token.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TextIO

from bot.request_context import current_request_id

# Library loggers whose chatty levels print personal data or secrets.
_LIBRARY_FLOORS = {
    "telegram": logging.INFO,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "aiosqlite": logging.WARNING,
    "asyncpg": logging.WARNING,
    "sqlalchemy.engine": logging.WARNING,
    "aiohttp.access": logging.WARNING,
    "alembic.runtime.plugins": logging.WARNING,  # one line per plugin at every start
}

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"

# Fields an access line passes with `extra=`; JSON lines carry them as their own keys.
# A fixed list: an `extra` someone adds later must not reach the log unreviewed.
ACCESS_FIELDS = ("channel", "outcome", "latency_ms")


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (None outside a request) to every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class TextFormatter(logging.Formatter):
    """The plain format, with ` [request id]` after the logger's name when there is one."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.request_tag = f" [{request_id}]" if request_id else ""
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for a log collector: time (UTC), level, logger, message,
    request_id when set, the access fields when given, the exception's text when any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            line["request_id"] = request_id
        for name in ACCESS_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def quiet_library_loggers() -> None:
    for name, floor in _LIBRARY_FLOORS.items():
        logging.getLogger(name).setLevel(floor)


def log_handler(stream: TextIO | None = None, fmt: str = "text") -> logging.Handler:
    """A stream handler in `fmt` ("text" or "json") that tags lines with the request id."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    return handler


def configure_logging(level: str, fmt: str = "text") -> None:
    # On the handler, not a logger: a logger's filters skip records propagated from children.
    logging.basicConfig(level=level, handlers=[log_handler(fmt=fmt)])
    quiet_library_loggers()
