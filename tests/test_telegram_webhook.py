"""Webhook mode end to end: `serve` with PUBLIC_URL sets the webhook on a fake Bot API,
which then POSTs each update to the service's own web server, as Telegram does. Only
calls with the secret are taken, only updates are queued, USSD serves while Telegram is
unreachable, and a SIGTERM lets an update in hand finish with its reply."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from telegram.error import BadRequest

from bot.app import Services, serve
from bot.health import TelegramState, TelegramStatus
from bot.settings import Settings
from handlers.telegram import TelegramLink, build_telegram_application, stop_application
from handlers.telegram_webhook import MAX_UPDATE_BYTES, SECRET_TOKEN_HEADER
from registry_client.sandbox import RunningSandbox
from tests.conftest import make_settings
from tests.support.fake_telegram import DEFAULT_TOKEN, FakeTelegram, running_fake_telegram
from tests.support.telegram_bot import polling_bot
from tests.test_cli import free_port
from tests.test_telegram_e2e import assert_status_of, at_the_name_prompt, buttons
from tests.test_telegram_resilience import fake_port, forwarding
from tests.ussd_phone import UssdPhone

CHAT = 6161


class Serving:
    """`serve` running in this process, reached over HTTP at `url`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = f"http://{settings.http_host}:{settings.http_port}"
        self.webhook = f"{self.url}/telegram/webhook"
        self.task = asyncio.create_task(serve(settings))

    async def started(self) -> None:
        """Until the web server answers and `serve` has taken over SIGTERM."""
        async with asyncio.timeout(30), aiohttp.ClientSession() as http:
            while True:
                if self.task.done():
                    self.task.result()
                    raise AssertionError("serve ended before it started")
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with http.get(f"{self.url}/healthz") as answer:
                        if answer.status == 200 and _sigterm_is_handled():
                            return
                await asyncio.sleep(0.05)

    async def readiness(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/readyz") as ready:
            body = await ready.json()
            assert isinstance(body, dict)
            return body

    async def telegram_becomes(self, state: str) -> None:
        async with asyncio.timeout(20):
            while True:
                if (await self.readiness())["telegram"] == state:
                    return
                await asyncio.sleep(0.05)

    def sigterm(self) -> None:
        assert _sigterm_is_handled()  # or the signal would end the test run
        os.kill(os.getpid(), signal.SIGTERM)

    async def stopped(self) -> None:
        """SIGTERM, then `serve` returns without an error."""
        self.sigterm()
        await asyncio.wait_for(self.task, timeout=30)

    async def post_update(self, body: bytes, *, secret: str | None) -> aiohttp.ClientResponse:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_TOKEN_HEADER] = secret
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.webhook, data=body, headers=headers) as answer,
        ):
            await answer.read()
            return answer


def _sigterm_is_handled() -> bool:
    return signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Serving]:
    served = Serving(settings)
    try:
        await served.started()
        yield served
    finally:
        if not served.task.done():
            if _sigterm_is_handled():
                served.sigterm()
            else:
                served.task.cancel()
            await asyncio.gather(served.task, return_exceptions=True)


def webhook_settings(
    database_url: str, tmp_path: Path, sandbox: RunningSandbox, telegram_api_url: str
) -> Settings:
    port = free_port()
    return make_settings(
        database_url,
        tmp_path,
        HTTP_PORT=str(port),
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        TELEGRAM_BOT_TOKEN=DEFAULT_TOKEN,
        TELEGRAM_API_URL=telegram_api_url,
        REGISTRY_URL=sandbox.url,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram() as server:
        server.add_user(CHAT)
        yield server


@pytest.fixture
async def on_webhook(
    tmp_path: Path, sandbox: RunningSandbox, fake: FakeTelegram
) -> AsyncIterator[Serving]:
    """`serve` in webhook mode on SQLite, the webhook set: for what no database changes."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'webhook.sqlite3'}"
    async with serving(webhook_settings(url, tmp_path, sandbox, fake.api_url)) as served:
        await fake.wait_for("setWebhook")
        yield served


Reply = tuple[str, list[tuple[str, str]]]  # text and buttons


async def status_check(fake: FakeTelegram, chat: int, nik: str, name: str) -> list[Reply]:
    """Consent, /cek, NIK, name: each reply's text and buttons, in order."""
    fake.send_command(chat, "/start")
    notice = await fake.next_reply(chat)
    fake.press_button(chat, notice["message_id"], "agree")
    replies = [notice, await fake.next_reply(chat)]
    for text in ("/cek", nik, name):
        fake.send_text(chat, text)
        replies.append(await fake.next_reply(chat, timeout=10))
    return [(reply["text"], buttons(reply)) for reply in replies]


async def test_a_status_check_through_the_webhook_gets_the_replies_polling_gives(
    database_url: str,
    tmp_path: Path,
    sandbox: RunningSandbox,
    fake: FakeTelegram,
    services: Services,  # migrates the database, which serve does not do on PostgreSQL
) -> None:
    person = sandbox.population.sample(1, programme="PKH")[0]
    async with polling_bot(fake, services):
        polled = await status_check(fake, CHAT + 1, person.nik, person.name)
    calls_when_polling = len(fake.calls)

    settings = webhook_settings(database_url, tmp_path, sandbox, fake.api_url)
    async with serving(settings) as served:
        registered = await fake.wait_for("setWebhook")
        assert registered["url"] == served.webhook
        assert registered["secret_token"] == settings.telegram_webhook_secret_token
        assert registered["allowed_updates"] == ["message", "callback_query"]
        assert registered["max_connections"] == 40
        await served.telegram_becomes("up")
        hooked = await status_check(fake, CHAT, person.nik, person.name)
        await served.stopped()

    assert hooked == polled
    assert_status_of(hooked[-1][0], person.nik, sandbox)
    assert all(delivery.ok for delivery in fake.webhook_deliveries)
    since = {call.method for call in fake.calls[calls_when_polling:]}
    assert "getUpdates" not in since
    assert "deleteWebhook" not in since  # other instances may still receive through it


def update_for(chat: int, text: str, update_id: int = 900_001) -> dict[str, Any]:
    """An update as Telegram would send it, for calls made without the fake."""
    command = [{"type": "bot_command", "offset": 0, "length": len(text)}] if text[0] == "/" else []
    return {
        "update_id": update_id,
        "message": {
            "message_id": 77,
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private", "first_name": "Tamu"},
            "from": {"id": chat, "is_bot": False, "first_name": "Tamu", "language_code": "id"},
            "text": text,
            "entities": command,
        },
    }


async def test_calls_without_the_secret_are_refused_and_nothing_is_handled(
    on_webhook: Serving, fake: FakeTelegram
) -> None:
    forged = json.dumps(update_for(CHAT, "/bantuan")).encode()
    almost = on_webhook.settings.telegram_webhook_secret_token[:-1]
    for secret in (None, "", "wrong-secret", almost):
        answer = await on_webhook.post_update(forged, secret=secret)
        assert answer.status == 403
        assert answer.headers["X-Request-Id"]  # through the request-id middleware too

    fake.send_command(CHAT, "/start")
    notice = await fake.next_reply(CHAT)
    # The chat's updates are handled in order: a forged one taken would have come first.
    assert [message["text"] for message in fake.messages_to(CHAT)] == [notice["text"]]
    assert "OTP" in notice["text"]


async def test_bodies_that_are_not_updates_get_400_never_500(
    on_webhook: Serving, fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    secret = on_webhook.settings.telegram_webhook_secret_token
    not_updates = [
        b"{not json",
        b"\xff\xfe{}",
        b"",
        json.dumps([update_for(CHAT, "/start")]).encode(),
        b'"an update"',
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps({"message": update_for(CHAT, "/start")["message"]}).encode(),
        json.dumps({**update_for(CHAT, "/start"), "update_id": "900001"}).encode(),
        json.dumps({"update_id": 5, "message": {"message_id": 1}}).encode(),
        json.dumps({"update_id": 6, "message": "hello"}).encode(),
        json.dumps({"update_id": 7, "callback_query": {"id": "1"}}).encode(),
    ]
    statuses = [(await on_webhook.post_update(body, secret=secret)).status for body in not_updates]
    assert statuses == [400] * len(not_updates)
    too_large = json.dumps({"update_id": 8, "padding": "x" * MAX_UPDATE_BYTES}).encode()
    assert (await on_webhook.post_update(too_large, secret=secret)).status == 413

    fake.send_command(CHAT, "/start")
    notice = await fake.next_reply(CHAT)
    assert [message["text"] for message in fake.messages_to(CHAT)] == [notice["text"]]
    assert "handling a Telegram update failed" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_ussd_serves_while_telegram_is_unreachable_and_the_webhook_is_set_once_it_is_up(
    tmp_path: Path, sandbox: RunningSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    url = f"sqlite+aiosqlite:///{tmp_path / 'webhook.sqlite3'}"
    settings = webhook_settings(url, tmp_path, sandbox, f"http://127.0.0.1:{port}")
    async with serving(settings) as served:
        await served.telegram_becomes("down")
        async with aiohttp.ClientSession() as http:
            assert (await UssdPhone(http, f"{served.url}/ussd").dial()).startswith("CON ")
        early = json.dumps(update_for(CHAT, "/start")).encode()
        secret = settings.telegram_webhook_secret_token
        assert (await served.post_update(early, secret=secret)).status == 503  # sent again later

        async with running_fake_telegram() as fake, forwarding(port, fake_port(fake)):
            fake.add_user(CHAT)
            registered = await fake.wait_for("setWebhook", timeout=20)
            assert registered["url"] == served.webhook
            await served.telegram_becomes("up")
            fake.send_command(CHAT, "/start")
            assert "OTP" in (await fake.next_reply(CHAT))["text"]
            await served.stopped()
    lines = [r.getMessage() for r in caplog.records if r.name == "handlers.telegram"]
    assert sum(line.startswith("Telegram: down") for line in lines) == 1
    assert sum(line == "Telegram: up" for line in lines) == 1
    assert "Traceback" not in caplog.text


async def test_sigterm_lets_an_update_in_hand_finish_with_its_reply(
    on_webhook: Serving, fake: FakeTelegram, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    await at_the_name_prompt(fake, CHAT, person.nik)
    async with aiohttp.ClientSession() as http:
        await http.post(f"{sandbox.url}/sandbox/faults", json={"latency_ms": 3000})

    fake.send_text(CHAT, person.name)
    await fake.wait_for_delivery(lambda d: d.ok and said(d.update) == person.name)
    on_webhook.sigterm()
    await until_refused(on_webhook.settings.http_port)
    replies_when_closed = len(fake.messages_to(CHAT))

    await asyncio.wait_for(on_webhook.task, timeout=30)
    result = await fake.next_reply(CHAT, timeout=0.1)  # sent before serve returned
    assert replies_when_closed == 4  # the web server closed with the look-up in hand
    assert_status_of(result["text"], person.nik, sandbox)


async def test_an_update_posted_again_after_a_lost_answer_is_applied_once(
    on_webhook: Serving, fake: FakeTelegram, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    await at_the_name_prompt(fake, CHAT, person.nik)
    fake.lose_webhook_answers(1)
    fake.send_text(CHAT, person.name)
    result = await fake.next_reply(CHAT, timeout=10)
    again = await fake.next_reply(CHAT, timeout=10)
    posted = [d for d in fake.webhook_deliveries if said(d.update) == person.name]
    assert [d.ok for d in posted] == [True, True]  # one update, posted twice
    assert posted[0].update["update_id"] == posted[1].update["update_id"]
    assert_status_of(result["text"], person.nik, sandbox)  # the check ran once
    # The question of the step it is at, asked again; not a refusal of the name as a
    # menu choice, which is what applying the update twice gives.
    assert not again["text"].startswith("Silakan pilih salah satu"), again["text"]
    assert "Apa yang ingin Anda lakukan?" in again["text"]


def said(update: dict[str, Any]) -> str | None:
    text = update.get("message", {}).get("text")
    return text if isinstance(text, str) else None


async def until_refused(port: int) -> None:
    """Until nothing listens on `port` any more."""
    async with asyncio.timeout(10):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return
            writer.close()
            await asyncio.sleep(0.02)


def test_a_webhook_telegram_refuses_is_logged_once_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Telegram may refuse a webhook for a while (its DNS does not see a new name yet): the
    link keeps trying, and the operator reads why in the one line per change."""
    link = TelegramLink(TelegramStatus())
    refused = BadRequest("Bad Request: bad webhook: Failed to resolve host: Name not known")
    link.went_down(refused, retry_in=2)
    link.went_down(refused, retry_in=4)
    lines = [r.getMessage() for r in caplog.records if r.name == "handlers.telegram"]
    assert lines[0] == (
        "Telegram: down (BadRequest: Bad webhook: failed to resolve host: name not known), "
        "retrying in 2 s"
    )
    assert len([line for line in lines if line.startswith("Telegram: down")]) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_set_webhook_is_watched_and_each_change_is_one_line(
    services: Services, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """In webhook mode nothing polls: the link asks Telegram how the webhook fares. Removed
    (someone polled with the token) it is set again; Telegram unreachable, or unable to
    deliver to PUBLIC_URL, is down; each change is one line."""
    port = free_port()
    api = make_settings(
        "sqlite+aiosqlite://", tmp_path, TELEGRAM_API_URL=f"http://127.0.0.1:{port}"
    )
    dead = f"http://127.0.0.1:{free_port()}/telegram/webhook"  # nothing listens there
    status = TelegramStatus()
    link = TelegramLink(status, first_retry_s=0.05)
    application = build_telegram_application(
        DEFAULT_TOKEN,
        services.engine,
        api_base=api.telegram_bot_api_base,
        file_api_base=api.telegram_file_api_base,
        webhook=True,
    )
    secret = "s" * 32

    def webhooks_set() -> int:
        return sum(call.method == "setWebhook" for call in fake.calls)

    async with running_fake_telegram() as fake:
        fake.add_user(CHAT)
        async with forwarding(port, fake_port(fake)):
            await link.connect_webhook(application, url=dead, secret_token=secret)
            assert status.state is TelegramState.UP
            watch = asyncio.create_task(
                link.watch_webhook(application, url=dead, secret_token=secret, interval_s=0.2)
            )
            async with aiohttp.ClientSession() as http:
                await http.post(f"{fake.api_url}/bot{DEFAULT_TOKEN}/deleteWebhook")
            await _until(lambda: webhooks_set() == 2)
            assert status.state is TelegramState.UP
        try:
            await _until(lambda: status.state is TelegramState.DOWN)  # unreachable
            async with forwarding(port, fake_port(fake)):
                await _until(lambda: status.state is TelegramState.UP)
                fake.send_text(CHAT, "/start")  # Telegram cannot deliver it to `dead`
                await _until(lambda: status.state is TelegramState.DOWN)
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
                await stop_application(application)
        finally:
            watch.cancel()
    lines = [r.getMessage() for r in caplog.records if r.name == "handlers.telegram"]
    assert sum("removed or replaced" in line for line in lines) == 1
    downs = [line for line in lines if line.startswith("Telegram: down")]
    assert len(downs) == 2, downs  # unreachable, then cannot deliver: one line each
    assert "cannot deliver to the webhook: Connection refused" in downs[1]
    assert sum(line == "Telegram: up" for line in lines) == 2  # connected, came back


async def _until(condition: Any, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - a state other code sets
            await asyncio.sleep(0.02)
