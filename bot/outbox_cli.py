"""`bansos-bot outbox`: the delivery worker alone, its status, and dead letters again."""

from __future__ import annotations

import asyncio
import signal
from datetime import datetime

from bot.app import build_services, utc_now
from bot.settings import Settings
from bot.storage.database import open_database
from bot.storage.outbox_repository import OutboxRepository, OutboxStatus


async def run_outbox(settings: Settings) -> None:
    """Deliver, follow and notify until SIGINT or SIGTERM; finish the sends in hand."""
    assert settings.registry_url is not None
    services = await build_services(settings, registry_url=settings.registry_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("bansos-bot outbox: delivering filings; stop with Ctrl-C", flush=True)
    try:
        await services.run_workers(stop)
    finally:
        await services.close()


async def show_status(settings: Settings) -> str:
    database = open_database(settings.database_url)
    try:
        async with database.transaction() as session:
            status = await OutboxRepository(session).status()
    finally:
        await database.dispose()
    return format_status(status, utc_now())


def format_status(status: OutboxStatus, now: datetime) -> str:
    lines = [f"undelivered filings: {status.depth}"]
    if status.oldest_undelivered is not None:
        age = int((now - status.oldest_undelivered).total_seconds())
        lines.append(f"oldest undelivered: {age} s ago")
    lines.append(f"dead letters: {len(status.dead)}")
    lines += [
        f"  {dead.ticket}  filed {dead.created_at:%Y-%m-%d %H:%M} UTC  "
        f"attempts {dead.attempts}  last error: {dead.last_error or '-'}"
        for dead in status.dead
    ]
    return "\n".join(lines)


async def retry_dead(settings: Settings) -> int:
    database = open_database(settings.database_url)
    try:
        async with database.transaction() as session:
            return await OutboxRepository(session).revive_dead(utc_now())
    finally:
        await database.dispose()
