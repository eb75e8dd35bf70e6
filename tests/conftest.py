"""Shared fixtures: both databases, the sandbox registry over real HTTP, the wired services.

PostgreSQL: TEST_POSTGRES_URL if set (CI starts a throwaway cluster), otherwise the
tests start their own throwaway cluster once per run.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy.engine import make_url

from bot.app import Services, build_services
from bot.logging_setup import quiet_library_loggers
from bot.settings import Settings, load_settings
from bot.storage.database import Database, open_database
from bot.storage.migrate import upgrade_to_head
from registry_client.sandbox import RunningSandbox, start_sandbox
from tests.support import postgres
from tests.support.fake_telegram import FakeTelegram, running_fake_telegram
from tests.support.telegram_bot import App, polling_bot
from tests.ussd_phone import UssdPhone

TEST_SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
SANDBOX_TOKEN = "sandbox-test-token"


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    configured = os.environ.get("TEST_POSTGRES_URL")
    if configured:
        yield configured
        return
    folder = Path(tempfile.mkdtemp(prefix="bansos-pg-"))
    try:
        yield postgres.start(folder)
    finally:
        postgres.stop(folder)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of each kind; every test that takes it runs on both."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
        return
    server = make_url(request.getfixturevalue("postgres_server_url"))
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(
        host=server.host, port=server.port, user=server.username, database="postgres"
    )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield server.set(database=name).render_as_string(hide_password=False)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The database alone, migrated to the current schema; for tests below the services."""
    opened = open_database(database_url)
    await upgrade_to_head(opened)
    try:
        yield opened
    finally:
        await opened.dispose()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> str:
    """The environment of `bansos-bot …` called in this process (`bot.cli.main`): only
    this test's database and key, migrated. Returns the database URL."""
    from bot.cli import main

    for name in list(os.environ):
        if name.startswith(("DATABASE_", "REGISTRY_", "TELEGRAM_", "SEALING_", "BOT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("BOT_SECRET_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("BOT_VAR_DIR", str(tmp_path / "var"))
    assert main(["migrate"]) == 0
    return database_url


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    """A fake Bot API; a test file that needs known users overrides it."""
    async with running_fake_telegram() as server:
        yield server


@pytest.fixture
async def bot_app(fake: FakeTelegram, services: Services) -> AsyncIterator[App]:
    """The real bot, polling `fake`, on the test's services."""
    async with polling_bot(fake, services) as application:
        yield application


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox(households=400, seed=7, token=SANDBOX_TOKEN)
    try:
        yield running
    finally:
        await running.stop()


def make_settings(database_url: str, tmp_path: Path, **overrides: str) -> Settings:
    env = {
        "DATABASE_URL": database_url,
        "BOT_SECRET_KEY": TEST_SECRET_KEY,
        "BOT_VAR_DIR": str(tmp_path / "var"),
        "REGISTRY_TOKEN": SANDBOX_TOKEN,
        "USSD_LOOKUP_BUDGET_S": "2",
        **overrides,
    }
    return load_settings(env)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
async def services(settings: Settings, sandbox: RunningSandbox) -> AsyncIterator[Services]:
    """Everything wired as `serve` wires it, on a migrated database of each kind."""
    from bot.storage.database import open_database
    from bot.storage.migrate import upgrade_to_head

    database = open_database(settings.database_url)
    await upgrade_to_head(database)  # PostgreSQL is not migrated implicitly, as in production
    await database.dispose()
    wired = await build_services(settings, registry_url=sandbox.url)
    try:
        yield wired
    finally:
        await wired.close()


# Phone numbers the tests dial from (tests/ussd_phone.py and the e2e tests).
TEST_PHONES = ("+628123456789", "628123456789", "+628009999999")


@pytest.fixture(autouse=True)
def no_personal_data_in_logs(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """Every test that talks to the sandbox fails if a NIK, a name or a test phone number
    of its people reaches a log line or a logged exception (UU PDP)."""
    quiet_library_loggers()  # as `bansos-bot serve` configures logging
    caplog.set_level(logging.DEBUG)
    # Taken now: the sandbox is torn down before this fixture's end runs.
    sandbox = request.getfixturevalue("sandbox") if "sandbox" in request.fixturenames else None
    yield
    if sandbox is None:
        return
    logged = caplog.text
    population = sandbox.population
    leaked = [p.nik for p in population.people() if p.nik in logged]
    leaked += [p.name for p in population.people() if p.name in logged]
    leaked += [phone for phone in TEST_PHONES if phone in logged]
    assert leaked == [], "personal data in the logs"


@pytest.fixture
async def web_url(services: Services) -> AsyncIterator[str]:
    """The root of the web app as `serve` builds it, on a local test server."""
    from handlers.web import create_web_app

    server = TestServer(create_web_app(services.ussd, services.health), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/"))
    finally:
        await server.close()


@pytest.fixture
def ussd_url(web_url: str) -> str:
    """POST /ussd of that web app."""
    return f"{web_url}ussd"


@pytest.fixture
async def phone(ussd_url: str) -> AsyncIterator[UssdPhone]:
    """A feature phone dialling that endpoint the way Africa's Talking sends requests."""
    async with aiohttp.ClientSession() as http:
        yield UssdPhone(http, ussd_url)
