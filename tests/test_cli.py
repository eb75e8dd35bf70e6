"""The `bansos-bot` command as an operator runs it: serve on the embedded defaults,
migrate a PostgreSQL database, refuse bad configuration in one line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.fake_telegram import running_fake_telegram
from tests.ussd_phone import UssdPhone

BANSOS_BOT = [sys.executable, "-c", "from bot.cli import main; raise SystemExit(main())"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "DATABASE_", "REGISTRY_"))
    }
    env.update({"BOT_VAR_DIR": str(tmp_path / "var"), "SANDBOX_HOUSEHOLDS": "300", **extra})
    return env


async def run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *BANSOS_BOT, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


class Served:
    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url
        self.banner: list[str] = []

    async def read_banner(self) -> None:
        assert self.process.stdout is not None
        while sum(line.startswith("    ") for line in self.banner) < 5:  # the sample pairs
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout=60)
            if not line:
                raise AssertionError(f"serve exited early: {self.banner}")
            self.banner.append(line.decode().rstrip())


@pytest.fixture
async def served(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    port = free_port()
    extra = getattr(request, "param", {})
    process = await asyncio.create_subprocess_exec(
        *BANSOS_BOT,
        "serve",
        env=clean_env(tmp_path, HTTP_PORT=str(port), **extra),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    running = Served(process, f"http://127.0.0.1:{port}")
    try:
        await running.read_banner()
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=20)


async def test_serve_runs_on_embedded_defaults_and_stops_cleanly(
    served: Served, tmp_path: Path
) -> None:
    assert any("/simulator" in line for line in served.banner)
    pairs = [line.split(maxsplit=1) for line in served.banner if line.startswith("    ")]
    assert len(pairs) == 5 and all(len(nik) == 16 for nik, _ in pairs)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{served.url}/healthz") as alive:
            assert alive.status == 200
        async with http.get(f"{served.url}/readyz") as ready:
            assert ready.status == 200 and (await ready.json())["database"] is True
        async with http.get(f"{served.url}/simulator") as page:
            assert page.status == 200 and "text/html" in page.content_type
        phone = UssdPhone(http, f"{served.url}/ussd")
        await phone.dial()
        await phone.answer("1")
        await phone.answer(pairs[0][0])
        result = await phone.answer(pairs[0][1])
        assert result.startswith("END ") and "Triwulan IV 2026" in result
    assert (tmp_path / "var" / "bansos-bot.sqlite3").exists()
    assert (tmp_path / "var" / "secret.key").exists()
    served.process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(served.process.wait(), timeout=20) == 0


async def test_serve_with_a_token_talks_to_the_configured_bot_api(tmp_path: Path) -> None:
    async with running_fake_telegram() as fake:
        port = free_port()
        env = clean_env(
            tmp_path,
            HTTP_PORT=str(port),
            TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_URL=fake.api_url,
        )
        process = await asyncio.create_subprocess_exec(
            *BANSOS_BOT,
            "serve",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await Served(process, "").read_banner()
            await fake.wait_for("setMyCommands", timeout=20)
            fake.send_command(77, "/start")
            notice = await fake.next_reply(77, timeout=20)
            assert "OTP" in notice["text"]
        finally:
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), timeout=20) == 0
        assert process.stderr is not None
        logged = (await process.stderr.read()).decode()
        assert fake.token.split(":")[1] not in logged  # the token never reaches the log


async def test_bad_configuration_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    code, _, err = await run("serve", env=clean_env(tmp_path, HTTP_PORT="eighty"))
    assert code == 2
    assert err.strip().count("\n") == 0 and "HTTP_PORT" in err


async def test_migrate_then_serve_checks_the_postgresql_schema(
    tmp_path: Path, postgres_server_url: str
) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    server = make_url(postgres_server_url)
    name = f"cli_{os.getpid()}"
    admin = await asyncpg.connect(
        host=server.host, port=server.port, user=server.username, database="postgres"
    )
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        env = clean_env(tmp_path, DATABASE_URL=url, HTTP_PORT=str(free_port()))
        code, _, err = await run("serve", env=env)
        assert code == 2 and "bansos-bot migrate" in err
        code, out, _ = await run("migrate", env=env)
        assert code == 0 and "up to date" in out
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await run("serve", env=clean_env(tmp_path, HTTP_PORT=str(port)))
    assert code == 1
    assert "cannot start" in err and str(port) in err
    assert "Traceback" not in err


async def test_a_token_telegram_refuses_is_one_clear_line(tmp_path: Path) -> None:
    async with running_fake_telegram() as fake:
        env = clean_env(
            tmp_path,
            HTTP_PORT=str(free_port()),
            TELEGRAM_BOT_TOKEN="123456:not-the-token-of-this-bot-at-all",
            TELEGRAM_API_URL=fake.api_url,
        )
        code, _, err = await run("serve", env=env)
    assert code == 2
    assert "TELEGRAM_BOT_TOKEN" in err and "Traceback" not in err
    assert "not-the-token" not in err
