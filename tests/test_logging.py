"""Structured logs: JSON lines, a request id on every line of a USSD request or a Telegram
update, and one access line each with outcome and latency but no personal data."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from bot.app import Services
from bot.logging_setup import log_handler
from bot.request_context import current_request_id, request_id_bound
from handlers.web import REQUEST_ID_HEADER
from tests.support.fake_telegram import FakeTelegram, running_fake_telegram
from tests.support.telegram_bot import polling_bot

PHONE = "+628123456789"  # one of conftest.TEST_PHONES: the log check looks for it too
CHAT = 987_654_321


class JsonLog:
    """What the root logger wrote in JSON while a test ran, one parsed object per line."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    @property
    def text(self) -> str:
        return self._stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]

    def access_lines(self, channel: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("channel") == channel]

    async def wait_for_access_lines(self, channel: str, count: int) -> list[dict[str, Any]]:
        # The line is written once the reply is sent: a moment after the test sees it.
        for _ in range(500):
            found = self.access_lines(channel)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.01)
        raise AssertionError(f"fewer than {count} {channel} access lines in:\n{self.text}")


@pytest.fixture
def json_log() -> Iterator[JsonLog]:
    """The handler `configure_logging(level, "json")` installs, on the root logger."""
    stream = io.StringIO()
    handler = log_handler(stream, "json")
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield JsonLog(stream)
    finally:
        root.removeHandler(handler)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram() as server:
        server.add_user(CHAT, first_name="Siti")
        yield server


def ussd_form(text: str) -> dict[str, str]:
    return {
        "sessionId": "ATUid_logging",
        "serviceCode": "*123*7#",
        "phoneNumber": PHONE,
        "networkCode": "51010",
        "text": text,
    }


def test_json_lines_parse_and_carry_the_request_id() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.json_lines")
    logger.addHandler(log_handler(stream, "json"))
    logger.propagate = False
    try:
        with request_id_bound("abc-123"):
            logger.warning("within %s", "a request")
        assert current_request_id() is None
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("outside any request")
    finally:
        logger.handlers.clear()
        logger.propagate = True
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "within a request"
    assert inside["request_id"] == "abc-123"
    assert inside["level"] == "WARNING" and inside["logger"] == "tests.json_lines"
    assert inside["time"].endswith("+00:00") and "T" in inside["time"]
    assert "exception" not in inside
    assert "request_id" not in outside
    assert "RuntimeError: boom" in outside["exception"]


def test_text_lines_show_the_request_id_in_brackets() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.text_lines")
    logger.addHandler(log_handler(stream, "text"))
    logger.propagate = False
    try:
        with request_id_bound("tg-7"):
            logger.warning("inside")
        logger.warning("outside")
    finally:
        logger.handlers.clear()
        logger.propagate = True
    inside, outside = stream.getvalue().splitlines()
    assert inside.endswith("WARNING tests.text_lines [tg-7]: inside")
    assert outside.endswith("WARNING tests.text_lines: outside")


async def test_middleware_returns_a_sane_request_id_and_replaces_a_bad_one(
    web_url: str,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(web_url + "healthz", headers={REQUEST_ID_HEADER: "gw_42-a"}) as kept:
            assert kept.headers[REQUEST_ID_HEADER] == "gw_42-a"
        for bad in ("x" * 65, "a b", "id;drop", "ünï"):
            async with http.get(web_url + "healthz", headers={REQUEST_ID_HEADER: bad}) as fresh:
                given = fresh.headers[REQUEST_ID_HEADER]
                assert given != bad and re.fullmatch(r"[0-9a-f]{16}", given), given
        async with http.get(web_url + "healthz") as first, http.get(web_url + "healthz") as second:
            assert first.headers[REQUEST_ID_HEADER] != second.headers[REQUEST_ID_HEADER]
        async with http.get(web_url + "no-such-page") as missing:
            assert missing.status == 404 and REQUEST_ID_HEADER in missing.headers


async def test_a_ussd_request_logs_one_access_line_without_the_phone(
    web_url: str, json_log: JsonLog
) -> None:
    async with aiohttp.ClientSession() as http:
        for n, text in enumerate(["", "1"]):
            headers = {REQUEST_ID_HEADER: f"ussd-test-{n}"}
            async with http.post(web_url + "ussd", data=ussd_form(text), headers=headers) as r:
                assert r.status == 200
                assert r.headers[REQUEST_ID_HEADER] == f"ussd-test-{n}"
        async with http.get(web_url + "healthz"):
            pass  # health probes get an id but no access line
    first, second = json_log.access_lines("ussd")
    assert [first["request_id"], second["request_id"]] == ["ussd-test-0", "ussd-test-1"]
    assert first["level"] == "INFO" and first["outcome"] == 200
    assert isinstance(first["latency_ms"], float) and first["latency_ms"] >= 0
    assert first["logger"] == "handlers.web"
    assert set(first) == {
        "time", "level", "logger", "message", "request_id", "channel", "outcome", "latency_ms"
    }  # fmt: skip
    assert PHONE not in json_log.text and PHONE.lstrip("+") not in json_log.text


async def test_a_refused_gateway_call_is_logged_with_its_status(
    web_url: str, json_log: JsonLog
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(web_url + "ussd", data={"text": "1"}) as answer,
    ):
        assert answer.status == 400
        request_id = answer.headers[REQUEST_ID_HEADER]
    [line] = json_log.access_lines("ussd")
    assert line["outcome"] == 400 and line["request_id"] == request_id


async def test_a_telegram_update_logs_its_line_with_its_id(
    fake: FakeTelegram, services: Services, json_log: JsonLog
) -> None:
    async with polling_bot(fake, services):
        fake.send_command(CHAT, "/start")
        await fake.next_reply(CHAT)
        fake.send_text(CHAT, "halo")
        await fake.next_reply(CHAT)
        first, second = await json_log.wait_for_access_lines("telegram", 2)
    for line in (first, second):
        assert re.fullmatch(r"tg-[0-9]+", line["request_id"]), line
        assert line["outcome"] == "ok" and line["level"] == "INFO"
        assert isinstance(line["latency_ms"], float)
    assert first["request_id"] != second["request_id"]
    assert str(CHAT) not in json_log.text and "halo" not in json_log.text


async def test_a_failed_telegram_update_logs_error_under_the_same_id(
    fake: FakeTelegram, services: Services, json_log: JsonLog
) -> None:
    async with polling_bot(fake, services):
        fake.block_chat(CHAT)  # every message to the chat fails: the handler raises
        fake.send_command(CHAT, "/start")
        [line] = await json_log.wait_for_access_lines("telegram", 1)
        for _ in range(500):
            failures = [entry for entry in json_log.lines() if entry["level"] == "ERROR"]
            if failures:
                break
            await asyncio.sleep(0.01)
    assert line["outcome"] == "error"
    [failure] = failures
    assert failure["request_id"] == line["request_id"]
    assert "Forbidden" in failure["exception"]
    assert str(CHAT) not in json_log.text
