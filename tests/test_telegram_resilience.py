"""An unreachable Bot API does not take USSD down: `serve` keeps answering phones, tries
Telegram again with growing pauses and says so in one log line per change. Start-up
problems are one line naming the cause; a Telegram look-up has a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from telegram.error import Conflict, NetworkError

from bot.app import Services
from bot.health import TelegramState, TelegramStatus
from bot.settings import SettingsError, load_settings
from handlers.telegram import TelegramLink, retry_delay
from registry_client.sandbox import RunningSandbox
from tests.conftest import TEST_SECRET_KEY
from tests.support.fake_telegram import DEFAULT_TOKEN, FakeTelegram, running_fake_telegram
from tests.support.telegram_bot import polling_bot
from tests.test_cli import BANSOS_BOT, Served, clean_env, free_port, run
from tests.test_telegram_e2e import at_the_name_prompt
from tests.ussd_phone import UssdPhone

CHAT = 5151


class ServeProcess:
    """`bansos-bot serve` in a subprocess, its log read line by line as it comes."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        assert process.stderr is not None
        self._reader = asyncio.create_task(self._read(process.stderr))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode().rstrip())
            self._changed.set()

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def count(self, fragment: str) -> int:
        return sum(fragment in line for line in self.lines)

    async def wait_for_line(self, fragment: str, timeout: float = 30) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not self.count(fragment):
                self._changed.clear()
                await self._changed.wait()

    async def readiness(self) -> dict[str, object]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/readyz") as ready:
            body = await ready.json()
            assert isinstance(body, dict)
            return body

    async def stop(self) -> int:
        """SIGTERM; the exit code, once the log is read to its end."""
        self.process.send_signal(signal.SIGTERM)
        return await self.exited(timeout=20)

    async def exited(self, timeout: float) -> int:  # noqa: ASYNC109
        code = await asyncio.wait_for(self.process.wait(), timeout=timeout)
        await asyncio.wait_for(self._reader, timeout=5)
        return code


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, telegram_api_url: str) -> AsyncIterator[ServeProcess]:
    port = free_port()
    env = clean_env(
        tmp_path,
        HTTP_PORT=str(port),
        TELEGRAM_BOT_TOKEN=DEFAULT_TOKEN,
        TELEGRAM_API_URL=telegram_api_url,
    )
    process = await asyncio.create_subprocess_exec(
        *BANSOS_BOT,
        "serve",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    served = ServeProcess(process, f"http://127.0.0.1:{port}")
    try:
        await Served(process, served.url).read_banner()
        yield served
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def forwarding(port: int, to_port: int) -> AsyncIterator[None]:
    """Listen on 127.0.0.1:`port` and pass each connection on to `to_port`: the fake Bot
    API appears at an address the bot was told about before it existed."""
    pipes: set[asyncio.Task[None]] = set()

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", to_port)
        for task in (pipe(reader, upstream_writer), pipe(upstream_reader, writer)):
            pipes.add(asyncio.create_task(task))

    server = await asyncio.start_server(connected, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)


async def test_ussd_serves_while_the_bot_api_is_unreachable(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with serving(tmp_path, closed) as served:
        async with aiohttp.ClientSession() as http:
            first_screen = await UssdPhone(http, f"{served.url}/ussd").dial()
        assert first_screen.startswith("CON ")
        await served.wait_for_line("Telegram: down")
        assert (await served.readiness())["telegram"] == "down"
        await asyncio.sleep(3.5)  # two more attempts (after about 1 s, then 2 s) fail too
        assert await served.stop() == 0
    assert "Traceback" not in served.log
    assert served.count("Telegram: down (NetworkError), retrying in 1 s") == 1
    assert served.count("Telegram: down") == 1
    assert served.count("Telegram: up") == 0


async def test_the_bot_answers_once_the_bot_api_comes_up(tmp_path: Path) -> None:
    port = free_port()
    async with serving(tmp_path, f"http://127.0.0.1:{port}") as served:
        await served.wait_for_line("Telegram: down")
        async with running_fake_telegram() as fake, forwarding(port, fake_port(fake)):
            await served.wait_for_line("Telegram: up")
            fake.send_command(CHAT, "/start")
            notice = await fake.next_reply(CHAT, timeout=20)
            assert "OTP" in notice["text"]
            assert (await served.readiness())["telegram"] == "up"
            assert await served.stop() == 0
    assert "Traceback" not in served.log
    assert (served.count("Telegram: down"), served.count("Telegram: up")) == (1, 1)


def fake_port(fake: FakeTelegram) -> int:
    return int(fake.api_url.rsplit(":", 1)[1])


async def test_a_token_refused_while_retrying_still_ends_serve_in_one_line(
    tmp_path: Path,
) -> None:
    """The first attempts fail on the network; once Telegram answers, it refuses the
    token: that does not mend by waiting."""
    port = free_port()
    async with serving(tmp_path, f"http://127.0.0.1:{port}") as served:
        await served.wait_for_line("Telegram: down")
        refusing = FakeTelegram(token="123456:another-bot-entirely-not-this-one")
        await refusing.start()
        try:
            async with forwarding(port, fake_port(refusing)):
                code = await served.exited(timeout=30)
        finally:
            await refusing.stop()
    assert code == 2
    assert "Traceback" not in served.log
    assert served.lines[-1] == "bansos-bot: Telegram refused TELEGRAM_BOT_TOKEN (invalid token)"
    assert DEFAULT_TOKEN.split(":")[1] not in served.log


@pytest.mark.parametrize("where", ["a file", "beneath a file"])
async def test_a_var_dir_that_cannot_be_one_is_one_line_naming_it(
    tmp_path: Path, where: str
) -> None:
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("x")
    var_dir = a_file if where == "a file" else a_file / "var"
    env = clean_env(tmp_path, BOT_VAR_DIR=str(var_dir), HTTP_PORT=str(free_port()))
    for command in ("serve", "migrate"):
        code, _, err = await run(command, env=env)
        assert code == 2
        assert err.strip().count("\n") == 0 and "Traceback" not in err
        assert "BOT_VAR_DIR" in err and str(a_file) in err


def test_a_var_dir_this_process_cannot_write_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "access", lambda *_: False)  # as root, chmod would not do
    with pytest.raises(SettingsError, match="BOT_VAR_DIR is not writable"):
        load_settings({"BOT_VAR_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="BOT_VAR_DIR cannot be created"):
        load_settings({"BOT_VAR_DIR": str(tmp_path / "var")})
    with pytest.raises(SettingsError, match="BLOB_DIR"):
        load_settings(
            {"BOT_VAR_DIR": str(tmp_path), "BOT_SECRET_KEY": TEST_SECRET_KEY} | KEPT_ELSEWHERE
        )


# Everything BOT_VAR_DIR would hold, kept elsewhere: BOT_VAR_DIR itself is not checked.
KEPT_ELSEWHERE = {
    "DATABASE_URL": "postgresql://bot@db/bansos",
    "BLOB_DIR": "/srv/blobs",
    "SEALING_KEYS_FILE": "/srv/keys.json",
}


async def test_a_database_that_does_not_answer_is_one_line_for_migrate_too(
    tmp_path: Path,
) -> None:
    url = f"postgresql://bot:secret@127.0.0.1:{free_port()}/bansos"
    env = clean_env(tmp_path, DATABASE_URL=url, BOT_SECRET_KEY=TEST_SECRET_KEY)
    code, _, err = await run("migrate", env=env)
    assert code == 1
    assert err.strip().count("\n") == 0 and "cannot start" in err
    assert "Traceback" not in err and "secret" not in err


def test_retry_pauses_double_up_to_the_cap_less_some_jitter() -> None:
    assert [retry_delay(n, 1.0, 60.0, 0.0) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert retry_delay(1000, 1.0, 60.0, 0.0) == 60.0
    assert 0.8 * 8 < retry_delay(3, 1.0, 60.0, 0.999) < 8


def test_the_link_logs_one_line_per_change_and_reports_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    status = TelegramStatus()
    link = TelegramLink(status)
    caplog.set_level(logging.INFO, logger="handlers.telegram")
    states = []
    for _ in range(3):
        link.went_down(NetworkError("connection refused"), retry_in=8.2)
    states.append(status.state)
    link.came_up()
    link.came_up()
    states.append(status.state)
    link.went_down(Conflict("terminated by other getUpdates request"))
    states.append(status.state)
    assert states == [TelegramState.DOWN, TelegramState.UP, TelegramState.DOWN]
    lines = [r.getMessage() for r in caplog.records if r.name == "handlers.telegram"]
    assert lines == [
        "Telegram: down (NetworkError), retrying in 8 s",
        "Telegram: up",
        "Telegram: down (Conflict), retrying",
    ]
    assert all(record.exc_info is None for record in caplog.records)


async def test_a_slow_registry_gets_a_telegram_answer_within_the_budget(
    services: Services, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("handlers.telegram.LOOKUP_BUDGET_S", 1.0)
    person = sandbox.population.sample(1)[0]
    async with running_fake_telegram() as fake, polling_bot(fake, services):
        await at_the_name_prompt(fake, CHAT, person.nik)
        async with aiohttp.ClientSession() as http:
            await http.post(f"{sandbox.url}/sandbox/faults", json={"latency_ms": 30_000})
        started = time.monotonic()
        fake.send_text(CHAT, person.name)
        answer = await fake.next_reply(CHAT, timeout=10)
        elapsed = time.monotonic() - started
    assert "coba lagi" in answer["text"].lower()
    assert elapsed < 1.0 + 2.0  # the budget, and time for the database and the replies
