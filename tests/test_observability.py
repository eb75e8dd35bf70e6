"""Liveness, readiness and Prometheus metrics over real HTTP, on SQLite and PostgreSQL with
the sandbox registry: what each endpoint answers, what the counters and gauges show after
real traffic, and that no label ever carries a phone number, a NIK or a ticket."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from bot import metrics
from bot.app import Services, utc_now
from bot.dialogs.model import Reply
from bot.filings import FilingAccepted
from bot.health import Health, TelegramState
from bot.lookup import LookupFailure, Throttled, ThrottleReason
from bot.metrics import MetricsPage
from bot.outbound import Delivery, DeliveryResult
from bot.storage.database import open_database
from handlers.web import create_web_app
from registry_client.sandbox import RunningSandbox
from tests.conftest import TEST_PHONES
from tests.filing_factory import file, filer, objection
from tests.support.fake_telegram import running_fake_telegram
from tests.support.telegram_bot import polling_bot
from tests.test_notices import advance, changes_of, subscribe_directly
from tests.test_outbox import set_faults
from tests.ussd_phone import UssdPhone

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Web:
    http: aiohttp.ClientSession
    url: str

    async def get(self, path: str) -> tuple[int, dict[str, object]]:
        async with self.http.get(self.url + path) as response:
            return response.status, await response.json()

    async def scrape(self) -> Samples:
        async with self.http.get(self.url + "/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            text = await response.text()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def phone(self) -> UssdPhone:
        return UssdPhone(self.http, self.url + "/ussd")


async def serving(app_health: Health, services: Services, page: MetricsPage) -> TestServer:
    server = TestServer(
        create_web_app(services.ussd, app_health, metrics_page=page), host="127.0.0.1"
    )
    await server.start_server()
    return server


@pytest.fixture
async def web(services: Services) -> AsyncIterator[Web]:
    server = await serving(services.health, services, services.metrics)
    try:
        async with aiohttp.ClientSession() as http:
            yield Web(http, str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def counted(name: str, **labels: str) -> float:
    """A counter as this process holds it, without a scrape."""
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_liveness_answers_without_the_database(services: Services) -> None:
    nowhere = open_database(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none")
    server = await serving(Health(nowhere, services.registry), services, services.metrics)
    try:
        async with aiohttp.ClientSession() as http:
            web = Web(http, str(server.make_url("")).rstrip("/"))
            assert await web.get("/healthz") == (200, {"status": "ok"})
            status, ready = await web.get("/readyz")
            assert status == 503 and ready["database"] is False and ready["registry"] is True
    finally:
        await server.close()
        await nowhere.dispose()


async def test_readiness_reports_database_registry_and_telegram(
    web: Web, services: Services
) -> None:
    status, ready = await web.get("/readyz")
    assert status == 200
    assert ready == {"status": "ok", "database": True, "registry": True, "telegram": "off"}
    services.telegram_status.set_down()
    status, ready = await web.get("/readyz")
    assert status == 200 and ready["telegram"] == "down"  # USSD serves on without Telegram
    services.telegram_status.set_up()
    assert (await web.get("/readyz"))[1]["telegram"] == "up"


async def test_readiness_fails_while_the_registry_is_down(
    web: Web, sandbox: RunningSandbox
) -> None:
    await set_faults(sandbox, down=True)
    status, ready = await web.get("/readyz")
    assert status == 503
    assert ready["status"] == "degraded"
    assert ready["database"] is True and ready["registry"] is False


async def test_readiness_is_probed_at_most_once_per_period(
    services: Services, sandbox: RunningSandbox
) -> None:
    now = [0.0]
    health = Health(services.database, services.registry, cache_s=1.5, clock=lambda: now[0])
    pings = counted("registry_request_seconds_count", call="ping")
    first = await asyncio.gather(*(health.check() for _ in range(20)))
    assert all(report.ok for report in first)
    assert counted("registry_request_seconds_count", call="ping") == pings + 1
    await set_faults(sandbox, down=True)
    assert (await health.check()).registry is True  # still the answer of a moment ago
    now[0] = 2.0
    later = await health.check()
    assert later.registry is False and later.telegram is TelegramState.OFF
    assert counted("registry_errors_total", call="ping", kind="unavailable") >= 1


async def test_a_ussd_status_check_is_counted(web: Web, sandbox: RunningSandbox) -> None:
    person = sandbox.population.sample(1)[0]
    before = await web.scrape()
    answer = await web.phone().check_status(person.nik, person.name)
    assert answer.startswith("END ")
    after = await web.scrape()

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("ussd_requests_total", outcome="200") == 4  # dial, consent, NIK, name
    assert grew("ussd_request_seconds_count") == 4
    assert grew("lookups_total", outcome="found") == 1
    assert grew("lookups_total", outcome="not_found") == 0
    assert grew("registry_request_seconds_count", call="status_lookup") == 1


async def test_a_registry_outage_is_counted_as_unavailable(
    web: Web, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    await set_faults(sandbox, down=True)
    before = await web.scrape()
    await web.phone().check_status(person.nik, person.name)
    after = await web.scrape()
    for name, labels in [
        ("lookups_total", {"outcome": "unavailable"}),
        ("registry_errors_total", {"call": "status_lookup", "kind": "unavailable"}),
    ]:
        assert value(after, name, **labels) - value(before, name, **labels) == 1, name


async def test_the_outbox_gauges_show_a_pending_filing(
    services: Services, sandbox: RunningSandbox
) -> None:
    # Scraped as if five minutes after the filing: the oldest one waits that long.
    later = MetricsPage(services.database, lambda: utc_now() + timedelta(minutes=5))
    server = await serving(services.health, services, later)
    try:
        async with aiohttp.ClientSession() as http:
            web = Web(http, str(server.make_url("")).rstrip("/"))
            empty = await web.scrape()
            assert value(empty, "outbox_depth") == 0
            assert value(empty, "outbox_oldest_undelivered_seconds") == 0
            who, _ = filer(1)
            nik = sandbox.population.sample(1)[0].nik
            assert isinstance(await file(services, who, objection(nik)), FilingAccepted)
            pending = await web.scrape()
    finally:
        await server.close()
    assert value(pending, "outbox_depth") == 1
    assert value(pending, "outbox_dead") == 0
    assert 295 <= value(pending, "outbox_oldest_undelivered_seconds") <= 320
    assert (
        value(pending, "filings_total", kind="objection")
        - value(empty, "filings_total", kind="objection")
        == 1
    )
    assert value(pending, "db_pool_size") >= 1
    assert ("db_pool_checked_out", frozenset()) in pending


async def test_no_label_carries_personal_data(
    web: Web, services: Services, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    phone = web.phone()
    await phone.check_status(person.nik, person.name)
    who, _ = filer(2, channel="ussd")
    accepted = await file(services, who, objection(person.nik))
    assert isinstance(accepted, FilingAccepted)
    async with web.http.get(web.url + "/metrics") as response:
        text = await response.text()
    # Names, labels and help, without the sample values: a float such as 0.0170002 once
    # held the test filer's short address ("70002") by chance.
    described = "\n".join(line.rsplit(" ", 1)[0] for line in text.splitlines())
    private = [person.nik, person.name, accepted.ticket, who.address, *TEST_PHONES]
    assert [secret for secret in private if secret in described] == []
    labels = {
        label
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        for label in sample.labels.values()
    }
    assert labels and not [label for label in labels if re.search(r"[0-9]{5}", label)]


class Port:
    """Delivers every notice, except to the chats that blocked the bot."""

    def __init__(self, blocked: set[str]) -> None:
        self.blocked = blocked

    async def deliver(self, address: str, reply: Reply) -> DeliveryResult:
        return DeliveryResult(Delivery.GONE if address in self.blocked else Delivery.SENT)


async def test_notices_are_counted_by_outcome(services: Services, sandbox: RunningSandbox) -> None:
    quarter = await advance(sandbox, changes=200)
    niks = list(await changes_of(services, quarter))[:6]
    await subscribe_directly(services, niks, 900_000)
    before = {o: counted("notices_total", outcome=o) for o in ("sent", "retired", "failed")}
    summary = await services.notice_run({"telegram": Port({"900001", "900004"})}).run(quarter)
    assert (summary.sent, summary.retired, summary.failed) == (4, 2, 0)
    grown = {o: counted("notices_total", outcome=o) - before[o] for o in before}
    assert grown == {"sent": 4, "retired": 2, "failed": 0}


async def test_a_telegram_update_is_counted(services: Services) -> None:
    chat = 5151
    before = counted("telegram_updates_total", outcome="ok")
    seconds = counted("telegram_update_seconds_count")
    async with running_fake_telegram() as fake, polling_bot(fake, services):
        fake.add_user(chat)
        fake.send_command(chat, "/start")
        await fake.next_reply(chat)
        for _ in range(100):  # the reply goes out just before the update is counted
            if counted("telegram_updates_total", outcome="ok") > before:
                break
            await asyncio.sleep(0.02)
    assert counted("telegram_updates_total", outcome="ok") == before + 1
    assert counted("telegram_update_seconds_count") == seconds + 1


def test_lookup_outcomes_have_fixed_labels() -> None:
    assert {
        metrics.lookup_label(outcome)
        for outcome in (
            *LookupFailure,
            *(Throttled(reason, 60) for reason in ThrottleReason),
        )
    } == {"not_found", "unavailable", "throttled_address", "throttled_nik", "throttled_busy"}
