"""Composition root: builds every part from Settings and runs them together (`serve`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from telegram.ext import Application

from bot.blob_store import BlobStore
from bot.crypto import KeyRing
from bot.dialog_engine import DialogEngine
from bot.effects import EffectRunner
from bot.facilitator_service import FacilitatorService
from bot.filing_service import FilingService
from bot.filings import AreaRule
from bot.health import Health, TelegramStatus
from bot.housekeeping import FacilitatorRetention, PhotoRetention, sweep_forever
from bot.i18n import load_catalogs
from bot.metrics import MetricsPage, RegistryCalls
from bot.notice_run import NoticeRun
from bot.notice_watch import watch_quarters
from bot.outbound import HoldForNextSession, OutboundDispatcher, OutboundPort
from bot.outbox import OutboxWorker, RetryPolicy
from bot.personal_data_service import PersonalDataService
from bot.photo_intake import PhotoIntake
from bot.photos import PhotoLimits
from bot.process_role import ALONE, ProcessRole, report_ready
from bot.settings import Settings
from bot.status_service import StatusService
from bot.storage.database import Database, open_database
from bot.storage.migrate import is_at_head, upgrade_to_head
from bot.subscription_service import SubscriptionService
from bot.ticket_follower import TicketFollower
from handlers.gateway_auth import GatewayPolicy, parse_networks
from handlers.telegram import CHANNEL as TELEGRAM_CHANNEL
from handlers.telegram import (
    TelegramLink,
    TelegramOutbound,
    build_telegram_application,
    stop_application,
)
from handlers.telegram_webhook import TelegramWebhook, webhook_url
from handlers.ussd import CHANNEL as USSD_CHANNEL
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
    health: Health
    # Set by whoever runs the Telegram receiver; /readyz reports it.
    telegram_status: TelegramStatus
    metrics: MetricsPage
    keys: KeyRing
    blobs: BlobStore
    filings: FilingService
    subscriptions: SubscriptionService
    outbox: OutboxWorker
    follower: TicketFollower
    outbound: OutboundDispatcher

    def notice_run(self, ports: Mapping[str, OutboundPort]) -> NoticeRun:
        """A quarterly run sending through `ports`; USSD notices wait for the next dial."""
        return NoticeRun(
            self.database,
            self.keys,
            self.registry,
            ports,
            held_channels=frozenset({USSD_CHANNEL}),
            clock=utc_now,
            rate=self.settings.notice_rate,
            lease=timedelta(seconds=self.settings.notice_lease_s),
        )

    async def watch_quarters(self, ports: Mapping[str, OutboundPort], stop: asyncio.Event) -> None:
        """Run each quarter once the registry publishes it, sending through `ports`."""
        await watch_quarters(
            self.database,
            self.registry,
            lambda: self.notice_run(ports),
            interval_s=self.settings.notice_poll_minutes * 60.0,
            stop=stop,
        )

    async def run_workers(self, stop: asyncio.Event) -> None:
        """The outbox, the ticket follower and outbound messages, until `stop` is set."""
        await asyncio.gather(
            self.outbox.run(stop), self.follower.run(stop), self.outbound.run(stop)
        )

    async def close(self) -> None:
        await self.registry.close()
        await self.database.dispose()


async def build_services(settings: Settings, *, registry_url: str) -> Services:
    database = open_database(settings.database_url, pool_size=settings.database_pool_size)
    try:
        await prepare_schema(database, settings)
    except BaseException:
        await database.dispose()
        raise
    keys = KeyRing.load(settings.secret_key, settings.sealing_keys_file)
    registry = RegistryClient(registry_url, settings.registry_token, observer=RegistryCalls())
    status = StatusService(
        registry,
        database,
        keys,
        limits=settings.lookup_limits,
        facilitator_limits=settings.facilitator_lookup_limits,
        clock=utc_now,
    )
    blobs = BlobStore(settings.blob_dir)
    limits = PhotoLimits(max_bytes=settings.photo_max_bytes, max_pixels=settings.photo_max_pixels)
    area_rule = AreaRule(settings.objection_area)
    filings = FilingService(
        keys,
        filings_per_day=settings.filings_per_day,
        facilitator_filings_per_day=settings.facilitator_filings_per_day,
        area_rule=area_rule,
        clock=utc_now,
    )
    subscriptions = SubscriptionService(
        keys,
        per_address=settings.subscriptions_per_chat,
        per_facilitator=settings.facilitator_subscriptions_max,
        clock=utc_now,
    )
    engine = DialogEngine(
        database,
        keys,
        EffectRunner(
            status,
            PhotoIntake(blobs, limits),
            filings,
            subscriptions,
            PersonalDataService(blobs, subscriptions),
            FacilitatorService(keys, clock=utc_now),
        ),
        idle_timeout=timedelta(minutes=settings.conversation_idle_minutes),
        clock=utc_now,
        area_rule=area_rule.value,
        photo_retention_days=settings.photo_retention_days,
    )
    ussd = UssdService(engine, lookup_budget_s=settings.ussd_lookup_budget_s)
    policy = RetryPolicy(
        max_attempts=settings.outbox_max_attempts,
        max_age=timedelta(hours=settings.outbox_max_age_hours),
    )
    outbox = OutboxWorker(
        database,
        keys,
        registry,
        blobs,
        clock=utc_now,
        policy=policy,
        lease=timedelta(seconds=settings.outbox_lease_s),
    )
    follower = TicketFollower(database, keys, registry, clock=utc_now)
    outbound = OutboundDispatcher(
        database, keys, {USSD_CHANNEL: HoldForNextSession()}, clock=utc_now
    )
    telegram_status = TelegramStatus()
    return Services(
        settings=settings,
        database=database,
        registry=registry,
        engine=engine,
        ussd=ussd,
        health=Health(database, registry, telegram_status),
        telegram_status=telegram_status,
        metrics=MetricsPage(database, utc_now),
        keys=keys,
        blobs=blobs,
        filings=filings,
        subscriptions=subscriptions,
        outbox=outbox,
        follower=follower,
        outbound=outbound,
    )


async def prepare_schema(database: Database, settings: Settings) -> None:
    # The embedded SQLite default migrates itself so a first run needs nothing; a shared
    # PostgreSQL is migrated on purpose, by `bansos-bot migrate`, once per release.
    if database.is_sqlite:
        await upgrade_to_head(database)
    elif not await is_at_head(database):
        raise SchemaOutOfDate("the database schema is not up to date: run `bansos-bot migrate`")


@contextlib.asynccontextmanager
async def registry_for(
    settings: Settings, shared_sandbox_url: str | None = None
) -> AsyncIterator[str]:
    """The registry's URL: the configured one, the sandbox a group of workers shares, or
    an in-process sandbox for the defaults."""
    if settings.registry_url is not None:
        yield settings.registry_url
        return
    if shared_sandbox_url is not None:
        yield shared_sandbox_url
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


async def serve(settings: Settings, role: ProcessRole = ALONE) -> None:
    """Run web server, Telegram receiver and (by default) the sandbox until a signal; as
    one worker of a group (`role`), share the port and leave the singletons to the primary."""
    load_catalogs()  # a missing translation stops the start, not the first reader
    async with registry_for(settings, role.sandbox_url) as registry_url:
        services = await build_services(settings, registry_url=registry_url)
        gateway = GatewayPolicy(
            settings.ussd_gateway_secret, parse_networks(settings.ussd_gateway_networks)
        )
        link = TelegramLink(services.telegram_status)
        telegram = None
        # Telegram serves updates to one poller at a time: in a group, the primary polls.
        if settings.telegram_bot_token is not None and (
            role.is_primary or settings.telegram_webhook
        ):
            telegram = build_telegram_application(
                settings.telegram_bot_token,
                services.engine,
                api_base=settings.telegram_bot_api_base,
                file_api_base=settings.telegram_file_api_base,
                link=link,
                webhook=settings.telegram_webhook,
                messages_per_second=role.telegram_send_rate(
                    settings.telegram_messages_per_second, webhook=settings.telegram_webhook
                ),
            )
        web_app = create_web_app(
            services.ussd,
            services.health,
            gateway=gateway,
            simulator=settings.simulator_enabled,
            metrics_page=services.metrics,
            telegram_webhook=(
                TelegramWebhook(telegram, settings.telegram_webhook_secret_token)
                if telegram is not None and settings.telegram_webhook
                else None
            ),
        )
        runner = web.AppRunner(web_app)
        await runner.setup()
        site = web.TCPSite(runner, settings.http_host, settings.http_port, reuse_port=role.in_group)
        await site.start()
        connecting: asyncio.Task[None] | None = None
        # Notice runs send through these; Telegram joins once it is up.
        ports: dict[str, OutboundPort] = {}
        try:
            if telegram is not None:
                connecting = asyncio.create_task(_run_telegram(telegram, link, services, ports))
            if role.in_group:
                report_ready()  # the supervisor prints the welcome, once for the group
            else:
                await print_welcome(settings, services.registry, site_url(settings))
            stop_workers = asyncio.Event()
            # Once per group, in the primary: on SQLite one process must do it, and on
            # PostgreSQL the workers' leases would only share it out.
            background = (
                asyncio.create_task(_run_background(services, ports, stop_workers))
                if role.is_primary
                else None
            )
            try:
                await _until_stopped(connecting)
            finally:
                stop_workers.set()
                if background is not None:
                    await background
        finally:
            if connecting is not None:
                connecting.cancel()  # still trying to start: stop trying
                await asyncio.wait([connecting])
            # A graceful stop, in this order: the web server stops listening and finishes
            # the requests in hand (a webhook call has queued its update by then); the bot
            # stops polling and handles every update queued or in hand, replies included;
            # then the database closes.
            await runner.cleanup()
            if telegram is not None:
                await stop_application(telegram)
            await services.close()


async def _run_background(
    services: Services, ports: Mapping[str, OutboundPort], stop: asyncio.Event
) -> None:
    """Housekeeping sweeps, the outbox, the ticket follower, outbound messages and the
    quarterly-notice watcher, until `stop` is set."""
    settings = services.settings
    retention = PhotoRetention(services.blobs, timedelta(days=settings.photo_retention_days))
    facilitators = FacilitatorRetention(timedelta(days=settings.facilitator_retention_days))
    housekeeping = asyncio.create_task(
        sweep_forever(services.database, utc_now, photos=retention, facilitators=facilitators)
    )
    try:
        await asyncio.gather(services.run_workers(stop), services.watch_quarters(ports, stop))
    finally:
        housekeeping.cancel()


async def _run_telegram(
    application: Application[Any, Any, Any, Any, Any, Any],
    link: TelegramLink,
    services: Services,
    ports: dict[str, OutboundPort],
) -> None:
    """Connect (poll, or set the webhook when PUBLIC_URL is set), however long Telegram
    takes to answer; then messages nobody asked for go out through it too. Until then they
    wait in their queues, and USSD runs regardless."""
    settings = services.settings

    def send_through_it() -> None:
        port = TelegramOutbound(application.bot)
        services.outbound.add_port(TELEGRAM_CHANNEL, port)
        ports[TELEGRAM_CHANNEL] = port

    if settings.public_url is None:
        await link.connect(application)  # polling reports its own failures
        send_through_it()
        return
    url, secret = webhook_url(settings.public_url), settings.telegram_webhook_secret_token
    await link.connect_webhook(application, url=url, secret_token=secret)
    send_through_it()
    await link.watch_webhook(application, url=url, secret_token=secret)  # until serve stops


def site_url(settings: Settings) -> str:
    return f"http://{settings.http_host}:{settings.http_port}"


async def print_welcome(
    settings: Settings, registry: RegistryClient, url: str, *, workers: int = 1
) -> None:
    """What the operator sees once the service serves: printed by `serve`, or by the
    supervisor of a group once all its workers serve."""
    group = f" with {workers} worker processes" if workers > 1 else ""
    lines = [f"bansos-bot is serving on {url}{group}"]
    if settings.simulator_enabled:
        lines.append(f"  USSD simulator: {url}/simulator")
    gateway = GatewayPolicy(
        settings.ussd_gateway_secret, parse_networks(settings.ussd_gateway_networks)
    )
    lines.append(f"  {gateway.describe()}")
    if not settings.telegram_enabled:
        lines.append("  Telegram: off (set TELEGRAM_BOT_TOKEN to turn it on)")
    elif settings.public_url is not None:
        lines.append(
            f"  Telegram: on, webhook at {webhook_url(settings.public_url)} "
            "(the log says when it is up or down)"
        )
    else:
        lines.append("  Telegram: on (the log says when it is up or down)")
    if settings.uses_sandbox:
        # Synthetic people of the sandbox registry, never real ones.
        pairs = await registry.sample_people(SAMPLE_PAIRS_SHOWN)
        lines.append("  Sandbox registry: try these NIK + name pairs")
        lines += [f"    {nik}  {name}" for nik, name in pairs]
    print("\n".join(lines), flush=True)


async def _until_stopped(connecting: asyncio.Task[None] | None) -> None:
    """Until SIGINT or SIGTERM, or until `connecting` fails: its error (Telegram refusing
    the token) is raised. Once it has connected, only a signal ends the wait."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    signalled = asyncio.create_task(stop.wait())
    try:
        if connecting is not None:
            await asyncio.wait({signalled, connecting}, return_when=asyncio.FIRST_COMPLETED)
            if connecting.done():
                connecting.result()
        await signalled
    finally:
        signalled.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
