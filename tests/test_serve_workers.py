"""`bansos-bot serve --workers N` as an operator runs it: one supervisor, N real worker
processes on one port, on the embedded SQLite and on PostgreSQL; a killed worker comes
back, SIGTERM stops them all, and a group that cannot start says why in one line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from bot.process_group import (
    FIRST_DELAY_S,
    MAX_DELAY_S,
    SETTLED_S,
    GiveUp,
    Restart,
    Supervisor,
    WorkerHistory,
)
from bot.process_role import READY_LINE, ProcessRole
from tests.conftest import TEST_SECRET_KEY
from tests.support.fake_telegram import running_fake_telegram
from tests.test_cli import BANSOS_BOT, Served, clean_env, free_port, run
from tests.ussd_phone import UssdPhone

CONNECTIONS = 24  # spread by the kernel: all on one of two workers is a 1 in 8 million chance


@dataclass
class Group:
    """A running `serve --workers N`: its banner read, its log collected as it comes."""

    process: asyncio.subprocess.Process
    port: int
    banner: list[str]
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        return children_of(self.process.pid)

    async def stop(self) -> int:
        """SIGTERM, as systemd stops it; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout=40)


GroupStarter = Callable[..., Awaitable[Group]]


@pytest.fixture
async def start_group(tmp_path: Path) -> AsyncIterator[GroupStarter]:
    """Starts `serve --workers N` with the test's environment and waits for its welcome."""
    started: list[Group] = []
    drains: list[asyncio.Task[None]] = []

    async def start(workers: int = 2, **env: str) -> Group:
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            *BANSOS_BOT,
            "serve",
            "--workers",
            str(workers),
            env=clean_env(tmp_path, HTTP_PORT=str(port), BOT_SECRET_KEY=TEST_SECRET_KEY, **env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        group = Group(process, port, banner=[])
        started.append(group)
        drains.append(asyncio.create_task(_collect(process, group.log)))
        served = Served(process, group.url)
        await served.read_banner()
        group.banner = served.banner
        return group

    try:
        yield start
    finally:
        for group in started:
            if group.process.returncode is None:
                group.process.kill()  # the workers follow: their lifeline closes
                await group.process.wait()
        await asyncio.gather(*drains)


async def _collect(process: asyncio.subprocess.Process, log: list[str]) -> None:
    assert process.stderr is not None
    async for line in process.stderr:
        log.append(line.decode().rstrip())


async def test_two_workers_on_the_embedded_defaults_share_the_port_and_come_back_when_killed(
    start_group: GroupStarter,
) -> None:
    group = await start_group()
    assert "with 2 worker processes" in group.banner[0]
    assert sum("is serving on" in line for line in group.banner) == 1
    assert any("/simulator" in line for line in group.banner)  # the workers share a sandbox
    workers = await listening_workers(group, count=2)
    await assert_every_worker_answers(group, workers)
    await assert_status_checks_work(group)

    primary, other = sorted(workers, key=worker_index)
    os.kill(other, signal.SIGKILL)
    restarted = await listening_workers(group, count=2, without=other)
    assert primary in restarted and other not in restarted
    restarts = [line for line in group.log if "starting it again" in line]
    assert len(restarts) == 1
    assert (
        f"worker 1 (pid {other}) stopped (killed by SIGKILL); starting it again in 1 s"
        in (restarts[0])
    )
    await assert_every_worker_answers(group, restarted)
    await assert_status_checks_work(group)

    assert await group.stop() == 0
    assert not any(is_running(pid) for pid in restarted)
    assert port_is_free(group.port)
    assert_no_personal_data(group)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_workers_on_postgresql(
    start_group: GroupStarter, database_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database_url}
    environment = clean_env(tmp_path, HTTP_PORT=str(free_port()), **env)
    code, _, err = await run("serve", "--workers", "2", env=environment)
    assert code == 2 and "bansos-bot migrate" in err  # said once, by the supervisor
    assert err.count("bansos-bot migrate") == 1 and "Traceback" not in err
    code, _, err = await run("migrate", env=environment)
    assert code == 0, err

    group = await start_group(**env)
    workers = await listening_workers(group, count=2)
    await assert_every_worker_answers(group, workers)
    await assert_status_checks_work(group)
    async with aiohttp.ClientSession() as http, http.get(f"{group.url}/readyz") as ready:
        assert ready.status == 200 and (await ready.json())["database"] is True
    assert await group.stop() == 0
    assert port_is_free(group.port)
    assert_no_personal_data(group)


async def test_telegram_is_polled_by_the_primary_worker(
    start_group: GroupStarter,
) -> None:
    async with running_fake_telegram() as fake:
        group = await start_group(TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_URL=fake.api_url)
        await fake.wait_for("setMyCommands", timeout=20)
        fake.send_command(77, "/start")
        assert "OTP" in (await fake.next_reply(77, timeout=20))["text"]
        assert sum(call.method == "getMe" for call in fake.calls) == 1  # one bot, not two
        assert await group.stop() == 0


async def test_on_a_webhook_every_worker_replies_and_together_they_keep_the_bots_rate(
    start_group: GroupStarter,
) -> None:
    """Telegram's limit is the bot's, not a process's: two workers at 4 messages a second
    in all take about 3 s for 16 replies at once (2 a second each, after a burst of 2);
    each at the whole rate would take about 1 s."""
    rate, chats = 4, list(range(4101, 4117))
    secret = "group-webhook-secret-0123"
    async with running_fake_telegram() as fake:
        for chat in chats:
            fake.add_user(chat)
        group = await start_group(
            TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_URL=fake.api_url,
            PUBLIC_URL="http://127.0.0.1:9",  # the fake's own deliveries are not used here
            TELEGRAM_WEBHOOK_SECRET=secret,
            TELEGRAM_MESSAGES_PER_SECOND=str(rate),
        )
        await fake.wait_for("setWebhook", timeout=30)  # each worker receives, so each
        await fake.wait_for("setWebhook", timeout=30)  # sets the webhook once it can reply

        async def post(update_id: int, chat: int) -> int:
            # A connection each, so that the kernel spreads them over the workers.
            update = {
                "update_id": update_id,
                "message": {
                    "message_id": 1,
                    "date": int(time.time()),
                    "chat": {"id": chat, "type": "private", "first_name": "Tamu"},
                    "from": {"id": chat, "is_bot": False, "first_name": "Tamu"},
                    "text": "/start",
                    "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
                },
            }
            headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{group.url}/telegram/webhook", json=update, headers=headers) as r,
            ):
                return r.status

        async def replied_at(chat: int) -> float:
            await fake.next_reply(chat, timeout=30)
            return time.monotonic()

        waiting = [asyncio.create_task(replied_at(chat)) for chat in chats]
        statuses = await asyncio.gather(*(post(900 + n, c) for n, c in enumerate(chats)))
        assert statuses == [200] * len(chats)
        started = time.monotonic()
        times = await asyncio.gather(*waiting)
        # Slowness only stretches this; without the share it was about 1 s.
        assert max(times) - started >= (len(chats) - rate) / rate * 0.7
        assert await group.stop() == 0


@pytest.mark.parametrize("workers", ["0", "-1", "two"])
async def test_workers_must_be_one_or_more(workers: str, tmp_path: Path) -> None:
    code, _, err = await run("serve", "--workers", workers, env=clean_env(tmp_path))
    assert code == 2
    assert "--workers" in err and "1 or more" in err and "Traceback" not in err


async def test_workers_need_a_fixed_port(tmp_path: Path) -> None:
    env = clean_env(tmp_path, HTTP_PORT="0", BOT_SECRET_KEY=TEST_SECRET_KEY)
    code, _, err = await run("serve", "--workers", "2", env=env)
    assert code == 2 and err.strip().splitlines() == [
        "bansos-bot: --workers needs a fixed HTTP_PORT, not 0"
    ]


async def test_a_port_in_use_stops_the_group_before_any_worker_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env(tmp_path, HTTP_PORT=str(port), BOT_SECRET_KEY=TEST_SECRET_KEY)
        # More workers than any machine has cores: warned about, in one line, first.
        code, _, err = await run("serve", "--workers", "4096", env=env)
    assert code == 1
    lines = err.strip().splitlines()
    assert sum("more than the" in line and "CPU cores" in line for line in lines) == 1
    assert lines[-1].startswith("bansos-bot: cannot start") and str(port) in lines[-1]
    assert "Traceback" not in err


async def test_a_worker_that_cannot_start_ends_the_group_in_one_line(tmp_path: Path) -> None:
    """Telegram refuses the token in the primary worker: a configuration error, so the
    supervisor stops every worker and exits, rather than starting it again forever."""
    async with running_fake_telegram() as fake:
        env = clean_env(
            tmp_path,
            HTTP_PORT=str(free_port()),
            BOT_SECRET_KEY=TEST_SECRET_KEY,
            TELEGRAM_BOT_TOKEN="123456:not-the-token-of-this-bot-at-all",
            TELEGRAM_API_URL=fake.api_url,
            LOG_LEVEL="WARNING",
        )
        code, _, err = await run("serve", "--workers", "2", env=env)
    assert code == 2
    assert err.count("TELEGRAM_BOT_TOKEN") == 1, err
    assert err.strip().splitlines()[-1].startswith("bansos-bot: Telegram refused")
    assert "starting it again" not in err and "Traceback" not in err
    assert "not-the-token" not in err


async def test_a_worker_failing_at_its_first_start_ends_the_group_with_its_own_words(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The supervisor with stand-in workers: worker 1 gives up at once, with exit code 1."""
    serving = (
        f"import signal, time; print({READY_LINE!r}, flush=True); "
        "signal.signal(signal.SIGTERM, lambda *_: exit(0)); time.sleep(60)"
    )
    failing = "print('bansos-bot: cannot start: no database here', flush=True); exit(1)"
    scripts = [serving, failing]
    supervisor = Supervisor(2, lambda index: [sys.executable, "-c", scripts[index]])
    welcomed: list[bool] = []

    async def welcome() -> None:
        welcomed.append(True)

    code = await asyncio.wait_for(supervisor.run(on_serving=welcome), timeout=30)
    assert code == 1 and welcomed == []
    assert capsys.readouterr().err == "bansos-bot: cannot start: no database here\n"


async def test_a_worker_that_served_and_then_stopped_is_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Stand-in workers: worker 1 serves, then stops with exit code 1, each time it
    starts; it comes back after 1 s, then 2 s. `stop()` (SIGTERM) as it starts a third
    time ends the group, with exit code 0."""
    serve_then_stop = f"import time; print({READY_LINE!r}, flush=True); time.sleep(0.2); exit(1)"
    serve_forever = (
        f"import signal, time; print({READY_LINE!r}, flush=True); "
        "signal.signal(signal.SIGTERM, lambda *_: exit(0)); time.sleep(60)"
    )
    starts: list[int] = []

    def command(index: int) -> list[str]:
        starts.append(index)
        if starts.count(1) == 3:
            supervisor.stop()
        return [sys.executable, "-c", serve_forever if index == 0 else serve_then_stop]

    async def welcome() -> None:
        pass

    supervisor = Supervisor(2, command)
    assert await asyncio.wait_for(supervisor.run(on_serving=welcome), timeout=30) == 0
    assert starts.count(0) == 1 and starts.count(1) == 3
    restarts = [r.message for r in caplog.records if "starting it again" in r.message]
    assert len(restarts) == 2
    assert "exit code 1" in restarts[0] and restarts[0].endswith("in 1 s")
    assert restarts[1].endswith("in 2 s")


def test_back_off_doubles_up_to_its_maximum_and_starts_over_after_a_good_run() -> None:
    history = WorkerHistory()
    history.has_served = True
    delays = [history.after_exit(1, served=False, uptime_s=0.5) for _ in range(7)]
    assert delays == [Restart(d) for d in (1.0, 2.0, 4.0, 8.0, 16.0, MAX_DELAY_S, MAX_DELAY_S)]
    assert history.after_exit(-9, served=True, uptime_s=SETTLED_S) == Restart(FIRST_DELAY_S)


def test_what_restarting_cannot_mend_gives_up() -> None:
    assert WorkerHistory().after_exit(1, served=False, uptime_s=0.1) == GiveUp(1)
    assert WorkerHistory().after_exit(-9, served=False, uptime_s=5) == GiveUp(1)
    assert WorkerHistory().after_exit(2, served=True, uptime_s=500) == GiveUp(2)


def test_only_worker_zero_is_primary() -> None:
    assert ProcessRole().is_primary and not ProcessRole().in_group
    assert ProcessRole(0, 3).is_primary and ProcessRole(0, 3).in_group
    assert not ProcessRole(2, 3).is_primary
    with pytest.raises(ValueError):
        ProcessRole(3, 3)


# --- Which process holds which socket, read from /proc (Linux, as SO_REUSEPORT is).


async def assert_every_worker_answers(group: Group, workers: set[int]) -> None:
    """Keep-alive connections, each answered by the worker that accepted it: all of them
    answer, and every worker has some."""
    sessions = [aiohttp.ClientSession() for _ in range(CONNECTIONS)]
    try:
        screens = await asyncio.gather(
            *(
                UssdPhone(http, f"{group.url}/ussd", phone=f"+62812444{n:04d}").dial()
                for n, http in enumerate(sessions)
            )
        )
        assert all(screen.startswith("CON ") for screen in screens)
        serving = {pid for pid in workers if socket_inodes(pid) & established(group.port)}
        assert serving == workers
    finally:
        await asyncio.gather(*(http.close() for http in sessions))


async def assert_status_checks_work(group: Group) -> None:
    """Whole status checks, each request on a new connection: one USSD session goes
    through both workers, its state in the shared database."""
    pairs = [line.split(maxsplit=1) for line in group.banner if line.startswith("    ")]
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        for n, (nik, name) in enumerate(pairs[:3]):
            phone = UssdPhone(http, f"{group.url}/ussd", phone=f"+62812555{n:04d}")
            result = await phone.check_status(nik, name)
            assert result.startswith("END ") and "Triwulan IV 2026" in result, result


def assert_no_personal_data(group: Group) -> None:
    logged = "\n".join(group.log)
    pairs = [line.split(maxsplit=1) for line in group.banner if line.startswith("    ")]
    assert not [value for pair in pairs for value in pair if value in logged]
    assert "62812555" not in logged and "62812444" not in logged


async def listening_workers(group: Group, *, count: int, without: int = 0) -> set[int]:
    """The workers listening on the group's port, once there are `count` of them."""
    for _ in range(300):
        workers = {pid for pid in group.workers() if pid != without}
        ready = {pid for pid in workers if socket_inodes(pid) & listening(group.port)}
        if len(ready) == count:
            return ready
        await asyncio.sleep(0.1)
    raise AssertionError(f"not {count} workers listening on {group.port}")


def children_of(parent: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == parent and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


def is_running(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def worker_index(pid: int) -> int:
    arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return int(arguments[arguments.index(b"--worker-index") + 1])


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def listening(port: int) -> set[int]:
    return _tcp_inodes(port, state="0A")


def established(port: int) -> set[int]:
    """The server ends of connections to `port` (their local end is the port)."""
    return _tcp_inodes(port, state="01")


def _tcp_inodes(port: int, *, state: str) -> set[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            columns = row.split()
            local_port = int(columns[1].rsplit(":", 1)[1], 16)
            if local_port == port and columns[3] == state:
                inodes.add(int(columns[9]))
    return inodes


def port_is_free(port: int) -> bool:
    """Nothing listens on it (closed connections may linger in TIME_WAIT: allowed, as
    every server allows them)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
