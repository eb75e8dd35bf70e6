"""`serve --workers N`: a supervisor and N `serve` workers sharing one port (SO_REUSEPORT,
Linux spreads the connections among them).

The supervisor does the one-time work (catalogs, the key file, the schema, the sandbox
registry when no REGISTRY_URL is set), starts the workers, prints the welcome once they
all serve, starts again a worker that stops on its own (with a back-off), and stops them
all on SIGTERM or SIGINT. What each worker does is in bot/process_role.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.app import prepare_schema, print_welcome, registry_for, site_url
from bot.crypto import KeyRing
from bot.i18n import load_catalogs
from bot.process_role import READY_LINE
from bot.settings import Settings
from bot.storage.database import open_database
from registry_client import RegistryClient

log = logging.getLogger(__name__)

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
# A worker that ran this long before it stopped is started again after FIRST_DELAY_S.
SETTLED_S = 30.0
# Workers stop within seconds; systemd's TimeoutStopSec=30 (docs/DEPLOY.md) ends the rest.
STOP_GRACE_S = 25.0
# `bansos-bot` exits with 2 for what only a change of configuration mends.
CONFIGURATION_ERROR = 2


@dataclass(frozen=True, slots=True)
class Restart:
    delay_s: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    exit_code: int


@dataclass(slots=True)
class WorkerHistory:
    """What the supervisor remembers of one worker across its restarts."""

    has_served: bool = False
    last_delay_s: float = 0.0

    def after_exit(self, code: int, *, served: bool, uptime_s: float) -> Restart | GiveUp:
        """What to do about a worker that stopped while no shutdown was under way.

        A configuration error, or a worker that never served since the group started, ends
        the group: starting it again would fail the same way, forever. A worker that has
        served is started again, after 1 s, then 2, 4 … 30 s while it keeps stopping soon;
        the database or the network may come back."""
        self.has_served = self.has_served or served
        if code == CONFIGURATION_ERROR or not self.has_served:
            return GiveUp(code if code > 0 else 1)
        if self.last_delay_s == 0.0 or uptime_s >= SETTLED_S:
            delay = FIRST_DELAY_S
        else:
            delay = min(self.last_delay_s * 2, MAX_DELAY_S)
        self.last_delay_s = delay
        return Restart(delay)


def describe_exit(code: int) -> str:
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def worker_command(index: int, count: int, sandbox_url: str | None) -> list[str]:
    """The command line of one worker: `serve` with the hidden flags of a group member."""
    command = [sys.executable, "-m", "bot.cli", "serve", "--workers", str(count)]
    command += ["--worker-index", str(index)]
    if sandbox_url is not None:
        command += ["--sandbox-url", sandbox_url]
    return command


async def run_group(settings: Settings, workers: int) -> int:
    """Serve with `workers` processes until SIGTERM or SIGINT; the exit code."""
    cores = os.cpu_count() or 1
    if workers > cores:
        log.warning("--workers %d is more than the %d CPU cores of this machine", workers, cores)
    load_catalogs()
    KeyRing.load(settings.secret_key, settings.sealing_keys_file)  # a broken file: one line
    await _check_port_is_free(settings)
    database = open_database(settings.database_url)
    try:
        await prepare_schema(database, settings)  # SQLite migrates here, once for all
    finally:
        await database.dispose()
    async with registry_for(settings) as registry_url:
        sandbox_url = registry_url if settings.uses_sandbox else None
        supervisor = Supervisor(workers, lambda index: worker_command(index, workers, sandbox_url))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, supervisor.stop)
        try:
            return await supervisor.run(
                on_serving=lambda: _welcome(settings, registry_url, workers)
            )
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def _check_port_is_free(settings: Settings) -> None:
    """Fail now, in one line, when the port is taken. Workers bind with SO_REUSEPORT, which
    would let them join another group of this user on the same port and split its traffic."""
    loop = asyncio.get_running_loop()
    probe = await loop.create_server(asyncio.Protocol, settings.http_host, settings.http_port)
    probe.close()
    await probe.wait_closed()


async def _welcome(settings: Settings, registry_url: str, workers: int) -> None:
    registry = RegistryClient(registry_url, settings.registry_token)
    try:
        await print_welcome(settings, registry, site_url(settings), workers=workers)
    finally:
        await registry.close()


class _Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.history = WorkerHistory()
        self.process: asyncio.subprocess.Process | None = None
        self.served_once = asyncio.Event()


class Supervisor:
    """Keeps `count` workers running until `stop()`; `command(index)` starts worker `index`.

    A worker's stdin is a pipe nobody writes to: it closes when the supervisor dies, even
    of SIGKILL, and the worker stops. Its stdout says `ready`, or why it could not start.
    Its stderr (the log) is the supervisor's. Workers run in sessions of their own, so a
    Ctrl-C in the terminal reaches the supervisor alone, which stops them in order."""

    def __init__(self, count: int, command: Callable[[int], list[str]]) -> None:
        self._command = command
        self._workers = [_Worker(index) for index in range(count)]
        self._stop = asyncio.Event()
        self._exit_code = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self, *, on_serving: Callable[[], Awaitable[None]]) -> int:
        """Start the workers, call `on_serving` once every one serves, keep them running
        until `stop()` or a worker that cannot start; then stop them all."""
        keepers = [asyncio.create_task(self._keep_running(worker)) for worker in self._workers]
        stopped = asyncio.create_task(self._stop.wait())
        serving = asyncio.create_task(self._all_served_once())
        try:
            await asyncio.wait({stopped, serving}, return_when=asyncio.FIRST_COMPLETED)
            if serving.done() and not self._stop.is_set():
                await on_serving()
            await stopped
        finally:
            self._stop.set()
            serving.cancel()
            stopped.cancel()
            await self._stop_workers(keepers)
        return self._exit_code

    async def _all_served_once(self) -> None:
        for worker in self._workers:
            await worker.served_once.wait()

    async def _keep_running(self, worker: _Worker) -> None:
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                code, served, last_words = await self._run_once(worker)
                if self._stop.is_set():
                    self._stopped(worker, code)
                    return
                step = worker.history.after_exit(
                    code, served=served, uptime_s=time.monotonic() - started
                )
                if isinstance(step, GiveUp):
                    self._give_up(worker, step, code=code, served=served, last_words=last_words)
                    return
                assert worker.process is not None
                log.warning(
                    "worker %d (pid %d) stopped (%s); starting it again in %g s",
                    worker.index,
                    worker.process.pid,
                    describe_exit(code),
                    step.delay_s,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), step.delay_s)
        except Exception:
            self._stop.set()  # the supervisor cannot start workers: stop the group
            raise

    def _stopped(self, worker: _Worker, code: int) -> None:
        """A worker stopped while the group stops: anything but a clean stop is an error."""
        if code not in (0, -signal.SIGTERM):  # SIGTERM before it could handle it: clean
            log.warning("worker %d stopped with %s", worker.index, describe_exit(code))
            self._exit_code = self._exit_code or 1

    async def _run_once(self, worker: _Worker) -> tuple[int, bool, str | None]:
        """Start the worker and wait for its end: its exit code, whether it served, and
        its last words."""
        process = await asyncio.create_subprocess_exec(
            *self._command(worker.index),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        worker.process = process
        if self._stop.is_set():  # the stop began while it was starting
            process.terminate()
        served, last_words = await self._follow(process, worker)
        code = await process.wait()
        assert process.stdin is not None
        process.stdin.close()
        return code, served, last_words

    @staticmethod
    async def _follow(
        process: asyncio.subprocess.Process, worker: _Worker
    ) -> tuple[bool, str | None]:
        """Read the worker's stdout to its end: whether it served, and its last words."""
        assert process.stdout is not None
        served, last_words = False, None
        async for raw in process.stdout:
            line = raw.decode("utf-8", errors="replace").strip()
            if line == READY_LINE:
                served = True
                worker.served_once.set()
            elif line:
                last_words = line
        return served, last_words

    def _give_up(
        self, worker: _Worker, step: GiveUp, *, code: int, served: bool, last_words: str | None
    ) -> None:
        """One line naming the cause (the worker's own, when it said one), then stop all."""
        if last_words is None:
            when = "stopped" if served else "stopped before it served"
            last_words = f"bansos-bot: worker {worker.index} {when} ({describe_exit(code)})"
        print(last_words, file=sys.stderr, flush=True)
        self._exit_code = step.exit_code
        self._stop.set()

    async def _stop_workers(self, keepers: list[asyncio.Task[None]]) -> None:
        """SIGTERM to every worker, then wait; SIGKILL to those still running after the
        grace period."""
        self._signal_workers(signal.SIGTERM)
        _, pending = await asyncio.wait(keepers, timeout=STOP_GRACE_S)
        if pending:
            log.warning("workers did not stop within %g s: killing them", STOP_GRACE_S)
            self._signal_workers(signal.SIGKILL)
            await asyncio.wait(pending)  # each one killed sets the exit code to 1
        for keeper in keepers:
            keeper.result()  # an error of the supervisor itself is not swallowed

    def _signal_workers(self, signum: signal.Signals) -> None:
        for worker in self._workers:
            if worker.process is not None and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):  # exited, not yet reaped
                    worker.process.send_signal(signum)
