"""Logging for the bot: our own loggers at the chosen level, libraries kept quieter.

At DEBUG, python-telegram-bot logs every update it receives and aiosqlite every SQL
parameter; those carry NIKs and names, which must never reach a log (UU PDP). httpx
logs request URLs at INFO, and Telegram URLs carry the bot token.
"""

from __future__ import annotations

import logging

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


def quiet_library_loggers() -> None:
    for name, floor in _LIBRARY_FLOORS.items():
        logging.getLogger(name).setLevel(floor)


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_library_loggers()
