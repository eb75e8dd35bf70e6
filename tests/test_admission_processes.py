"""The limits hold across processes: two `bansos-bot serve` instances on one PostgreSQL,
with many phones guessing names for one NIK at once through both."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from registry_client.sandbox import RunningSandbox
from tests.conftest import SANDBOX_TOKEN, TEST_SECRET_KEY
from tests.test_cli import BANSOS_BOT, clean_env, free_port, run
from tests.ussd_phone import UssdPhone

NAME_FAILURES = 5
PHONES = 30


async def wait_until_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if process.returncode is not None:
                raise AssertionError("serve exited before it was healthy")
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("serve did not become healthy")


@pytest.fixture
async def two_instances(
    database_url: str, sandbox: RunningSandbox, tmp_path: Path
) -> AsyncIterator[list[str]]:
    env = clean_env(
        tmp_path,
        DATABASE_URL=database_url,
        BOT_SECRET_KEY=TEST_SECRET_KEY,
        REGISTRY_URL=sandbox.url,
        REGISTRY_TOKEN=SANDBOX_TOKEN,
        NAME_FAILURES_PER_NIK=str(NAME_FAILURES),
        LOG_LEVEL="WARNING",
    )
    code, _, err = await run("migrate", env=env)
    assert code == 0, err
    processes, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            process = await asyncio.create_subprocess_exec(
                *BANSOS_BOT,
                "serve",
                env={**env, "HTTP_PORT": str(port)},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            processes.append(process)
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            await wait_until_healthy(url, process)
        yield urls
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), timeout=20)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_concurrent_wrong_names_through_two_servers_let_exactly_the_limit_through(
    two_instances: list[str], sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    async with aiohttp.ClientSession() as http:
        phones = [
            UssdPhone(
                http,
                f"{two_instances[n % 2]}/ussd",
                phone=f"+62812{n:07d}",
                session_id=f"AT_{uuid.uuid4().hex}",
            )
            for n in range(PHONES)
        ]
        for phone in phones:  # consent first, so that the checks below start together
            await phone.dial()
            await phone.answer("1")
            await phone.answer(person.nik)
        results = await asyncio.gather(*(phone.answer("Bukan Namanya") for phone in phones))
    assert all(result.startswith("END ") for result in results)
    not_found = [r for r in results if "tdk ditemukan" in r]
    locked = [r for r in results if "terkunci" in r]
    assert len(not_found) == NAME_FAILURES, results
    assert len(locked) == PHONES - NAME_FAILURES, results
