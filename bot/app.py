"""Composition root: builds every part from Settings and runs them together (`serve`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from bot.crypto import KeyRing
from bot.dialogs.engine import DialogEngine
from bot.housekeeping import sweep_forever
from bot.settings import Settings
from bot.status_service import StatusService
from bot.storage.database import Database, open_database
from bot.storage.migrate import is_at_head, upgrade_to_head
from handlers.telegram import build_telegram_application, start_polling, stop_polling
from handlers.ussd import UssdService
from handlers.web import create_web_app
from registry_client import RegistryClient
from registry_client.sandbox import start_sandbox

log = logging.getLogger(__name__)

SAMPLE_PAIRS_SHOWN = 5


class SchemaOutOfDate(RuntimeError):
    """The database needs `bansos-bot migrate` before the bot can serve."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """Everything a channel adapter needs, wired once."""

    settings: Settings
    database: Database
    registry: RegistryClient
    engine: DialogEngine
    ussd: UssdService

    async def close(self) -> None:
        await self.registry.close()
        await self.database.dispose()


async def build_services(settings: Settings, *, registry_url: str) -> Services:
    database = open_database(settings.database_url)
    try:
        await _prepare_schema(database, settings)
    except BaseException:
        await database.dispose()
        raise
    keys = KeyRing.from_secret(settings.secret_key)
    registry = RegistryClient(registry_url, settings.registry_token)
    status = StatusService(
        registry, database, keys, lookups_per_hour=settings.lookups_per_hour, clock=utc_now
    )
    engine = DialogEngine(
        database,
        keys,
        status,
        idle_timeout=timedelta(minutes=settings.conversation_idle_minutes),
        clock=utc_now,
    )
    ussd = UssdService(engine, lookup_budget_s=settings.ussd_lookup_budget_s)
    return Services(settings, database, registry, engine, ussd)


async def _prepare_schema(database: Database, settings: Settings) -> None:
    # The embedded SQLite default migrates itself so a first run needs nothing; a shared
    # PostgreSQL is migrated on purpose, by `bansos-bot migrate`, once per release.
    if database.is_sqlite:
        await upgrade_to_head(database)
    elif not await is_at_head(database):
        raise SchemaOutOfDate("the database schema is not up to date: run `bansos-bot migrate`")


@contextlib.asynccontextmanager
async def registry_for(settings: Settings) -> AsyncIterator[str]:
    """The registry's URL: the configured one, or an in-process sandbox for the defaults."""
    if settings.registry_url is not None:
        yield settings.registry_url
        return
    sandbox = await start_sandbox(
        households=settings.sandbox_households,
        seed=settings.sandbox_seed,
        token=settings.registry_token,
    )
    log.info("sandbox registry running at %s", sandbox.url)
    try:
        yield sandbox.url
    finally:
        await sandbox.stop()


async def serve(settings: Settings) -> None:
    """Run web server, Telegram receiver and (by default) the sandbox until a signal."""
    async with registry_for(settings) as registry_url:
        services = await build_services(settings, registry_url=registry_url)
        runner = web.AppRunner(create_web_app(services.ussd, services.database))
        await runner.setup()
        site = web.TCPSite(runner, settings.http_host, settings.http_port)
        await site.start()
        telegram = None
        try:
            if settings.telegram_bot_token is not None:
                telegram = build_telegram_application(
                    settings.telegram_bot_token,
                    services.engine,
                    api_base=settings.telegram_bot_api_base,
                    file_api_base=settings.telegram_file_api_base,
                )
                await start_polling(telegram)
            await _print_welcome(settings, services, site_url(settings))
            housekeeping = asyncio.create_task(sweep_forever(services.database, utc_now))
            try:
                await _until_stopped()
            finally:
                housekeeping.cancel()
        finally:
            if telegram is not None:
                await stop_polling(telegram)
            await runner.cleanup()
            await services.close()


def site_url(settings: Settings) -> str:
    return f"http://{settings.http_host}:{settings.http_port}"


async def _print_welcome(settings: Settings, services: Services, url: str) -> None:
    lines = [f"bansos-bot is serving on {url}", f"  USSD simulator: {url}/simulator"]
    lines.append(
        "  Telegram: polling"
        if settings.telegram_enabled
        else "  Telegram: off (set TELEGRAM_BOT_TOKEN to turn it on)"
    )
    if settings.uses_sandbox:
        # Synthetic people of the sandbox registry, never real ones.
        pairs = await services.registry.sample_people(SAMPLE_PAIRS_SHOWN)
        lines.append("  Sandbox registry: try these NIK + name pairs")
        lines += [f"    {nik}  {name}" for nik, name in pairs]
    print("\n".join(lines), flush=True)


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
