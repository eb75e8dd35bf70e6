#!/usr/bin/env python
"""Open-loop load at stepped arrival rates up to saturation, beside a floor and the old commit.

Not part of the test run. Arrivals follow a fixed schedule whatever the service does (open
loop: a slow answer never slows the arrivals, as on launch day). One command measures, on
a throwaway PostgreSQL cluster (with pg_stat_statements) and the sandbox registry:

* ussd      the real `bansos-bot serve`, one instance: USSD status checks (a new phone
            per session, four requests back to back), stepped rates up to saturation;
* floor     the same load against a trivial aiohttp handler on this machine;
* webhook   Telegram updates POSTed to /telegram/webhook of a real `serve` in webhook mode,
            replies going to a fake Bot API (bench/fake_bot_api.py): as shipped (replies
            paced to Telegram's 30 a second), and with TELEGRAM_MESSAGES_PER_SECOND=1000;
* two       two `serve` instances on one database, requests spread round-robin, a request
            that meets a connection error sent once to the other (nginx's
            `proxy_next_upstream error`);
* workers   `serve --workers 2` on one port;
* kill      two instances at a fixed rate, one SIGKILLed after 5 s and restarted 5 s later;
* baseline  the old commit's bot (its own tree, its own database, migrated by itself),
            beside the current tree run the same way (bench/ussd_status.py --serve-bot).

Per rate: offered and achieved rate, p50 / p99 / max latency, errors, bot CPU per request,
database statements per request (server side, pg_stat_statements) and the CPU of every
process (cores); then saturation rates, ratios and a PASS / MISS summary of the targets.

    python bench/load.py                        # everything, 10–12 minutes on 2 cores
    python bench/load.py --snapshot HEAD        # the committed code, whatever the work tree
    python bench/load.py --parts ussd,floor --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.load_client import LoadClient  # noqa: E402
from bench.ussd_status import (  # noqa: E402
    LIMITS,
    LOOKUP_BUDGET_S,
    SANDBOX_SEED,
    SANDBOX_TOKEN,
    SECRET_KEY,
    BenchError,
    Child,
    Database,
    _die_with_parent,
    child_env,
    cluster_cpu_s,
    fetch_people,
    free_port,
    machine_busy_s,
    process_cpu_s,
    python_cli,
    quantile,
    self_cpu_s,
    start_bot,
    wait_until_ready,
)

PARTS = ("ussd", "floor", "webhook", "two", "workers", "webhook-workers", "kill", "baseline")
REQUEST_TIMEOUT_S = 30
STEP_PAUSE_S = 1.5  # between steps: the last step's stragglers and GC settle
WARMUP_S = 3.0
WARMUP_RATE = 60.0
# Stepping stops at a step whose achieved rate is under 90 % of the offered one, whose
# p99 is over 2 s, or with more than 1 % errors.
STOP_ACHIEVED = 0.90
STOP_P99_S = 2.0
STOP_ERROR_SHARE = 0.01
# Saturation rate: the highest offered rate with achieved ≥ 95 % of it, p99 < 1 s, 0 errors.
SAT_ACHIEVED = 0.95
SAT_P99_S = 1.0
# A failing step during which other processes used more than this many cores is measured
# once more (the first one is printed with "~" and not counted).
DISTURBED_CORES = 0.3
# Replies still missing this long after the last one arrived count as errors.
REPLY_GRACE_S = 5.0
REPLY_WAIT_MAX_S = 120.0
SNAPSHOT_ENV = "BANSOS_LOAD_SNAPSHOT"  # set in a --snapshot run: what it measures
REPOSITORY_ENV = "BANSOS_LOAD_REPOSITORY"  # and the git repository it came from
REPOSITORY = Path(os.environ.get(REPOSITORY_ENV) or ROOT)
UNPACED_MESSAGES_PER_SECOND = 1000.0  # the highest TELEGRAM_MESSAGES_PER_SECOND allowed
WEBHOOK_SECRET = "bench-webhook-secret-0123456789"
FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"
WEBHOOK_HEADERS = (
    b"Content-Type: application/json\r\nX-Telegram-Bot-Api-Secret-Token: %s\r\n"
    % WEBHOOK_SECRET.encode()
)
BASELINE_LIMITS = {"LOOKUPS_PER_HOUR": "10000"}  # the old commit's one limit, at its maximum
# Outer settings that would change what is measured: never inherited by a bot.
CLEARED = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_API_URL",
    "PUBLIC_URL",
    "TELEGRAM_WEBHOOK_SECRET",
    "TELEGRAM_MESSAGES_PER_SECOND",
    "USSD_GATEWAY_SECRET",
    "USSD_GATEWAY_NETWORKS",
    "LOG_FORMAT",
    "SEALING_KEYS_FILE",
    "BLOB_DIR",
)


def log(text: str = "") -> None:
    print(text, flush=True)


# --- processes ------------------------------------------------------------------------------


@dataclass
class Run:
    """Everything this run started, stopped in reverse order on any exit."""

    workdir: Path
    children: list[Child] = field(default_factory=list)
    cluster_folder: Path | None = None
    trees: list[Path] = field(default_factory=list)

    def start(
        self, name: str, command: list[str], env: dict[str, str], *, cwd: Path = ROOT
    ) -> Child:
        log_file = self.workdir / f"{name.replace(' ', '-')}.log"
        child = Child.start(name, command, env, log_file, cwd=cwd, append=True)
        self.children.append(child)
        return child

    def stop(self, *children: Child) -> None:
        for child in children:
            child.stop()
            with contextlib.suppress(ValueError):
                self.children.remove(child)

    def close(self) -> None:
        for child in reversed(self.children):
            with contextlib.suppress(Exception):
                child.stop(timeout=15)
        self.children.clear()
        if self.cluster_folder is not None:
            from tests.support import postgres

            postgres.stop(self.cluster_folder)
            shutil.rmtree(self.cluster_folder, ignore_errors=True)
            self.cluster_folder = None
        for tree in self.trees:
            shutil.rmtree(tree, ignore_errors=True)
        self.trees.clear()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(roots: list[int]) -> float:
    """CPU seconds of each root (with its reaped children) and of all its live descendants
    (a `serve --workers` supervisor's workers), from /proc."""
    parents: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                stats[int(entry.name)] = fields
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    ticks = 0
    seen: set[int] = set()
    pending = [pid for pid in roots if pid in stats]
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        fields = stats[pid]
        ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        pending.extend(parents.get(pid, ()))
    return ticks / _TICK


# --- PostgreSQL with pg_stat_statements -----------------------------------------------------


@dataclass
class Cluster:
    server_url: str  # postgresql+asyncpg://…/postgres
    postmaster_pid: int | None
    stats: Any  # an asyncpg connection when pg_stat_statements is on, else None

    def url(self, database: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.server_url).set(database=database).render_as_string(False)

    @property
    def plain_url(self) -> str:
        return self.server_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def create_database(self, name: str) -> str:
        import asyncpg

        connection = await asyncpg.connect(self.plain_url)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return self.url(name)

    async def statements(self) -> int | None:
        """Statements executed in the cluster so far (BEGIN and COMMIT included)."""
        if self.stats is None:
            return None
        return int(await self.stats.fetchval("SELECT sum(calls)::bigint FROM pg_stat_statements"))


async def start_cluster(run: Run) -> Cluster:
    """tests/support/postgres.py's throwaway cluster, restarted with pg_stat_statements."""
    import asyncpg

    from tests.support import postgres

    folder = Path(tempfile.mkdtemp(prefix="bansos-load-pg-"))
    run.cluster_folder = folder
    try:
        server_url = postgres.start(folder)
    except subprocess.CalledProcessError as error:
        output = (error.stderr or b"").decode(errors="replace")
        raise BenchError(f"PostgreSQL did not start:\n{output}") from None
    cluster = Cluster(server_url, None, None)
    bindir = postgres.find_bindir()
    library = bindir.parent / "lib" / "pg_stat_statements.so"
    if library.exists():
        connection = await asyncpg.connect(cluster.plain_url)
        try:
            await connection.execute(
                "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
            )
        finally:
            await connection.close()
        restart = [str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast"]
        restart += ["-l", str(folder / "server.log"), "-w", "restart"]
        command(postgres._as_cluster_owner(restart), check=True)
        cluster.stats = await asyncpg.connect(cluster.plain_url)
        await cluster.stats.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        # BEGIN and COMMIT are round trips too (on by default; set here in case it is not).
        await cluster.stats.execute("ALTER SYSTEM SET pg_stat_statements.track_utility = on")
        await cluster.stats.execute("SELECT pg_reload_conf()")
    else:
        log(f"  pg_stat_statements is not installed ({library}): statements per request n/a")
    pid_file = folder / "data" / "postmaster.pid"
    if pid_file.exists():
        cluster.postmaster_pid = int(pid_file.read_text().split()[0])
    return cluster


def migrate(url: str, var_dir: Path) -> None:
    done = subprocess.run(
        python_cli("migrate"),
        cwd=ROOT,
        env=clean_env(
            child_env(
                DATABASE_URL=url,
                BOT_SECRET_KEY=SECRET_KEY,
                LOG_LEVEL="WARNING",
                BOT_VAR_DIR=str(var_dir),
            )
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"`bansos-bot migrate` failed:\n{done.stderr}")


def command(
    line: list[str], *, check: bool = False, **options: Any
) -> subprocess.CompletedProcess[bytes]:
    """A short command, run to its end (between steps, when nothing else is measured)."""
    return subprocess.run(line, capture_output=True, check=check, **options)


def clean_env(env: dict[str, str]) -> dict[str, str]:
    for name in CLEARED:
        env.pop(name, None)
    return env


# --- one step: measurements -----------------------------------------------------------------


@dataclass
class Step:
    offered: float  # requests (USSD) or updates (webhook) per second
    elapsed: float = 0.0  # first arrival to last completion, drain included
    done: int = 0  # answered requests / replied updates
    latencies: list[float] = field(default_factory=list)  # sorted, s
    errors: Counter[str] = field(default_factory=Counter)
    retried: int = 0
    lag_p99: float = 0.0  # the generator's lateness behind its schedule
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds during the step
    statements: int | None = None
    # webhook only
    accepted: int = 0
    http_elapsed: float = 0.0  # first arrival to the last webhook answer
    http_latencies: list[float] = field(default_factory=list)
    messages: int = 0
    refine: bool = False  # a step between the last passing and the first failing rate
    disturbed: bool = False  # failed while other processes were busy: measured again

    @property
    def achieved(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def p50(self) -> float:
        return quantile(self.latencies, 0.5)

    @property
    def p99(self) -> float:
        return quantile(self.latencies, 0.99)

    @property
    def top(self) -> float:
        return self.latencies[-1] if self.latencies else float("nan")

    def passes(self) -> bool:
        return (
            self.achieved >= SAT_ACHIEVED * self.offered
            and self.p99 < SAT_P99_S
            and self.error_count == 0
        )

    def stops(self) -> bool:
        sent = max(1, self.done + self.error_count)
        return (
            self.achieved < STOP_ACHIEVED * self.offered
            or not self.p99 < STOP_P99_S
            or self.error_count / sent > STOP_ERROR_SHARE
        )

    def per_done(self, value: float | None, scale: float = 1.0) -> str:
        if value is None or not self.done:
            return "n/a"
        return f"{value / self.done * scale:.2f}"


class Meter:
    """CPU of the bot (a process tree, or several), PostgreSQL, the sandbox, the fake Bot
    API, this load generator and everything else on the machine, between start and stop."""

    def __init__(
        self, bot_pids: list[int], cluster: Cluster, sandbox: Child, fake: Child | None
    ) -> None:
        self._bot = bot_pids
        self._cluster = cluster
        self._sandbox = sandbox
        self._fake = fake
        self._before: dict[str, float] = {}
        self._statements: int | None = None

    def _sample(self) -> dict[str, float]:
        sample = {
            "bot": tree_cpu_s(self._bot),
            "pg": cluster_cpu_s(self._cluster.postmaster_pid)
            if self._cluster.postmaster_pid
            else 0.0,
            "sandbox": process_cpu_s(self._sandbox.pid),
            "gen": self_cpu_s(),
        }
        if self._fake is not None:
            sample["fake tg"] = process_cpu_s(self._fake.pid)
        sample["machine"] = machine_busy_s()[0]
        return sample

    async def start(self) -> None:
        self._statements = await self._cluster.statements()
        self._before = self._sample()

    async def stop(self, step: Step) -> None:
        after = self._sample()
        used = {name: after[name] - self._before[name] for name in after}
        machine = used.pop("machine")
        used["other"] = max(0.0, machine - sum(used.values()))
        step.cpu = used
        statements = await self._cluster.statements()
        if statements is not None and self._statements is not None:
            step.statements = statements - self._statements - 1  # less our own first read


# --- the load -------------------------------------------------------------------------------


class Target:
    """Instances behind a pretend proxy: round-robin; a connection error (refused, reset,
    closed before the answer) sends the request once to the next instance, as nginx's
    `proxy_next_upstream error` does. A timeout is not sent again."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self._next = 0
        self.retried = 0

    async def post(self, client: LoadClient, body: bytes, headers: bytes) -> tuple[int, bytes]:
        index = self._next
        self._next = (index + 1) % len(self.urls)
        try:
            return await client.post(self.urls[index], body, headers)
        except TimeoutError:
            raise
        except OSError:  # refused, reset, closed before the whole answer
            if len(self.urls) == 1:
                raise
            self.retried += 1
            return await client.post(self.urls[(index + 1) % len(self.urls)], body, headers)


async def open_loop(
    rate: float, seconds: float, arrival: Callable[[int, float], Awaitable[None]]
) -> tuple[float, float]:
    """Start `arrival(n, due)` at due = start + n / rate, never waiting for earlier ones;
    (seconds from the first arrival to the last completion, p99 of the lateness)."""
    count = max(1, round(rate * seconds))
    interval = 1.0 / rate
    tasks = []
    lateness = []
    started = time.perf_counter()
    for n in range(count):
        due = started + n * interval
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
            now = time.perf_counter()
        lateness.append(max(0.0, now - due))
        tasks.append(asyncio.create_task(arrival(n, due)))
    await asyncio.gather(*tasks)
    lateness.sort()
    return time.perf_counter() - started, quantile(lateness, 0.99)


@dataclass
class UssdLoad:
    """Sessions of four requests (dial, agree, NIK, name), each from a new phone."""

    people: list[tuple[str, str]]
    bad_texts: tuple[str, ...]
    next_phone: int = 81_000_000_000

    def _texts(self, n: int) -> tuple[str, ...]:
        nik, name = self.people[n % len(self.people)]
        return ("", "1", f"1*{nik}", f"1*{nik}*{name}")

    def _problem(self, index: int, status: int, answer: bytes) -> str | None:
        if status != 200:
            return f"HTTP {status}"
        if index < 3:
            return None if answer.startswith(b"CON ") else "not a CON screen"
        if not answer.startswith(b"END "):
            return "no END screen"
        text = answer.decode("utf-8", "replace")
        for bad in self.bad_texts:
            if bad in text:
                return f"answered {bad[:24]!r}…"
        return None

    async def step(
        self,
        target: Target,
        rate: float,
        seconds: float,
        meter: Meter | None,
        during: Callable[[], Awaitable[None]] | None = None,
    ) -> Step:
        step = Step(offered=rate)
        latencies: list[float] = []
        client = LoadClient(REQUEST_TIMEOUT_S)
        first_phone = self.next_phone
        self.next_phone += round(rate * seconds) + 10

        async def session(n: int, due: float) -> None:
            phone = first_phone + n
            head = (
                f"sessionId=load-{phone}&serviceCode=%2A123%2A7%23"
                f"&phoneNumber=%2B62{phone}&networkCode=51010&text="
            )
            for index, text in enumerate(self._texts(n)):
                # The first request's latency runs from its scheduled moment: a late
                # generator shows as latency, not as a lower offered rate.
                sent = due if index == 0 else time.perf_counter()
                body = (head + urllib.parse.quote_plus(text)).encode()
                try:
                    status, answer = await target.post(client, body, FORM)
                except TimeoutError:
                    step.errors["timeout"] += 1
                    return
                except OSError as error:
                    step.errors[type(error).__name__] += 1
                    return
                latency = time.perf_counter() - sent
                problem = self._problem(index, status, answer)
                if problem is not None:
                    step.errors[problem] += 1
                    return
                latencies.append(latency)

        side = asyncio.create_task(during()) if during is not None else None
        try:
            if meter is not None:
                await meter.start()
            retried = target.retried
            step.elapsed, step.lag_p99 = await open_loop(rate / 4, seconds, session)
            if meter is not None:
                await meter.stop(step)
            if side is not None:
                await side
        finally:
            client.close()
        step.retried = target.retried - retried
        step.done = len(latencies)
        step.latencies = sorted(latencies)
        return step


@dataclass
class WebhookLoad:
    """Updates from new users, each a private "/start"; replies land at the fake Bot API."""

    fake_url: str
    next_user: int = 7_000_000_000
    next_update: int = 1

    async def step(self, target: Target, rate: float, seconds: float, meter: Meter | None) -> Step:
        import aiohttp

        step = Step(offered=rate)
        sent_at: dict[str, float] = {}  # chat id → wall-clock moment it was due
        http_latencies: list[float] = []
        first_user, first_update = self.next_user, self.next_update
        count = round(rate * seconds) + 10
        self.next_user += count
        self.next_update += count
        client = LoadClient(REQUEST_TIMEOUT_S)
        answered = 0.0
        wall_offset = time.time() - time.perf_counter()

        async def update(n: int, due: float) -> None:
            user = first_user + n
            body = json.dumps(
                {
                    "update_id": first_update + n,
                    "message": {
                        "message_id": 1,
                        "date": int(time.time()),
                        "chat": {"id": user, "type": "private", "first_name": "Warga"},
                        "from": {
                            "id": user,
                            "is_bot": False,
                            "first_name": "Warga",
                            "language_code": "id",
                        },
                        "text": "/start",
                        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
                    },
                }
            ).encode()
            nonlocal answered
            try:
                status, _ = await target.post(client, body, WEBHOOK_HEADERS)
            except TimeoutError:
                step.errors["timeout"] += 1
                return
            except OSError as error:
                step.errors[type(error).__name__] += 1
                return
            answered = time.perf_counter()
            http_latencies.append(answered - due)
            if status != 200:
                step.errors[f"HTTP {status}"] += 1
                return
            sent_at[str(user)] = due + wall_offset

        async with aiohttp.ClientSession() as http:
            await http.post(f"{self.fake_url}/bench/replies")  # forget earlier replies
            try:
                if meter is not None:
                    await meter.start()
                started = time.time()
                begun = time.perf_counter()
                _, step.lag_p99 = await open_loop(rate, seconds, update)
                step.http_elapsed = max(1e-9, answered - begun)
                replies = await self._replies(http, set(sent_at))
                if meter is not None:
                    await meter.stop(step)
            finally:
                client.close()
        first, counts = replies["first"], replies["count"]
        e2e = sorted(first[chat] - sent_at[chat] for chat in sent_at if chat in first)
        step.accepted = len(sent_at)
        step.done = len(e2e)
        step.latencies = e2e
        step.http_latencies = sorted(http_latencies)
        step.messages = sum(counts.get(chat, 0) for chat in sent_at)
        missing = step.accepted - step.done
        if missing:
            step.errors["no reply"] += missing
        last = max((first[chat] for chat in sent_at if chat in first), default=started)
        step.elapsed = max(1e-9, last - started)
        return step

    async def _replies(self, http: Any, chats: set[str]) -> dict[str, Any]:
        """Wait for a reply to every accepted update (or for REPLY_GRACE_S without a new
        one); then take the fake's records."""
        waited_from = last_progress = time.monotonic()
        seen = -1
        while True:
            async with http.get(f"{self.fake_url}/bench/stats") as response:
                chats_replied = (await response.json())["chats"]
            now = time.monotonic()
            if chats_replied >= len(chats):
                break
            if chats_replied != seen:
                seen, last_progress = chats_replied, now
            if now - last_progress > REPLY_GRACE_S or now - waited_from > REPLY_WAIT_MAX_S:
                break
            await asyncio.sleep(0.2)
        async with http.post(f"{self.fake_url}/bench/replies") as response:
            result: dict[str, Any] = await response.json()
            return result


# --- stepping up to saturation --------------------------------------------------------------


@dataclass
class Series:
    label: str
    kind: str  # "ussd" or "webhook"
    steps: list[Step] = field(default_factory=list)
    exhausted: bool = False  # every rate passed: saturation is above the last one

    @property
    def counted(self) -> list[Step]:
        """The steps the figures come from (not those measured again)."""
        return [step for step in self.steps if not step.disturbed]

    @property
    def saturation(self) -> float:
        passing = [step.offered for step in self.counted if step.passes()]
        return max(passing, default=0.0)

    def saturation_text(self) -> str:
        return f"{'≥ ' if self.exhausted else ''}{self.saturation:.0f}"

    @property
    def peak(self) -> float:
        return max((step.achieved for step in self.counted), default=0.0)

    @property
    def cpu_per_request_ms(self) -> float:
        """The bot's CPU per request, median over the passing steps (interference moves it
        far less than it moves latency or the saturation rate)."""
        values = sorted(
            step.cpu["bot"] / step.done * 1000
            for step in self.counted
            if step.passes() and step.done and "bot" in step.cpu
        )
        return values[len(values) // 2] if values else float("nan")

    @property
    def other_cores(self) -> float:
        """Mean CPU of other processes on the machine over the counted steps (cores)."""
        steps = [step for step in self.counted if "other" in step.cpu and step.elapsed]
        if not steps:
            return float("nan")
        return sum(step.cpu["other"] / step.elapsed for step in steps) / len(steps)

    def at(self, rate: float) -> Step | None:
        for step in self.counted:
            if step.offered == rate and not step.refine:
                return step
        return None


def mark(step: Step) -> str:
    return "~" if step.disturbed else "*" if step.refine else " "


def disturbed(step: Step) -> bool:
    """A failing step during which other processes took more than DISTURBED_CORES."""
    seconds = step.elapsed or 1.0
    return not step.passes() and step.cpu.get("other", 0.0) / seconds > DISTURBED_CORES


def ussd_header(unit: str = "req") -> str:
    return (
        f"{'offered':>8}{'achieved':>9}{'p50 ms':>8}{'p99 ms':>9}{'max ms':>9}{'errors':>7}"
        f"{'retry':>6}{'CPU ms/' + unit:>12}{'stmts/' + unit:>11}   cores: bot   pg  sbx  gen"
        f" other  lag99 ms"
    )


def cores(step: Step, names: tuple[str, ...]) -> str:
    seconds = step.elapsed or 1.0
    return "".join(
        f"{step.cpu[name] / seconds:5.2f}" if name in step.cpu else "  n/a" for name in names
    )


def ussd_row(step: Step) -> str:
    return (
        f"{step.offered:>7.0f}{mark(step)}{step.achieved:>9.0f}{step.p50 * 1000:>8.1f}"
        f"{step.p99 * 1000:>9.1f}{step.top * 1000:>9.1f}{step.error_count:>7}{step.retried:>6}"
        f"{step.per_done(step.cpu.get('bot'), 1000):>12}{step.per_done(step.statements):>11}"
        f"        {cores(step, ('bot', 'pg', 'sandbox', 'gen', 'other'))}"
        f"{step.lag_p99 * 1000:>9.1f}" + _error_kinds(step)
    )


def webhook_header() -> str:
    return (
        f"{'offered':>8}{'accepted':>9}{'http p99':>9}{'replies/s':>10}{'e2e p50':>8}"
        f"{'e2e p99':>9}{'e2e max':>9}{'errors':>7}{'msg/upd':>8}{'CPU ms/upd':>11}"
        f"{'stmts/upd':>10}   cores: bot   pg  fake  gen other"
    )


def webhook_row(step: Step) -> str:
    accepted = step.accepted / step.http_elapsed if step.http_elapsed else 0.0
    http_p99 = quantile(step.http_latencies, 0.99) * 1000
    messages = f"{step.messages / step.done:.2f}" if step.done else "n/a"
    return (
        f"{step.offered:>7.0f}{mark(step)}{accepted:>9.0f}{http_p99:>9.1f}{step.achieved:>10.0f}"
        f"{step.p50 * 1000:>8.0f}{step.p99 * 1000:>9.0f}{step.top * 1000:>9.0f}"
        f"{step.error_count:>7}{messages:>8}{step.per_done(step.cpu.get('bot'), 1000):>11}"
        f"{step.per_done(step.statements):>10}        {cores(step, ('bot', 'pg', 'fake tg'))}"
        f"{cores(step, ('gen', 'other'))}" + _error_kinds(step)
    )


def _error_kinds(step: Step) -> str:
    if not step.errors:
        return ""
    return "  (" + ", ".join(f"{n} {kind}" for kind, n in step.errors.most_common(3)) + ")"


async def stepped(
    series: Series,
    rates: list[float],
    refine: int,
    measure: Callable[[float, bool], Awaitable[Step]],
    check: Callable[[], None],
) -> Series:
    """Step through `rates` until one stops the stepping; then halve the interval between
    the highest passing rate and the next failing one `refine` times."""
    log(f"\n{series.label}")
    log(ussd_header() if series.kind == "ussd" else webhook_header())
    row = ussd_row if series.kind == "ussd" else webhook_row
    await measure(min(WARMUP_RATE, rates[0]), True)  # untimed: pools, caches, imports

    async def one(rate: float, *, refine: bool = False) -> Step:
        await asyncio.sleep(STEP_PAUSE_S * (2 if refine else 1))
        check()
        step = await measure(rate, False)
        step.refine = refine
        if disturbed(step):  # someone else's work took the cores: once more, later
            step.disturbed = True
            series.steps.append(step)
            log(row(step))
            await asyncio.sleep(STEP_PAUSE_S * 2)
            check()
            step = await measure(rate, False)
            step.refine = refine
        series.steps.append(step)
        log(row(step))
        return step

    stopped = False
    for rate in rates:
        if (await one(rate)).stops():
            stopped = True
            break
    series.exhausted = not stopped and all(step.passes() for step in series.counted[-1:])
    for _ in range(refine):
        low = series.saturation
        failing = [s.offered for s in series.counted if not s.passes() and s.offered > low]
        if not failing:
            break
        middle = round((low + min(failing)) / 2 / 10) * 10
        if middle <= low or middle >= min(failing):
            break
        await one(middle, refine=True)
    log(f"  saturation {series.saturation_text()}/s; peak achieved {series.peak:.0f}/s")
    return series


# --- the parts ------------------------------------------------------------------------------


@dataclass
class Bench:
    arguments: argparse.Namespace
    run: Run
    cluster: Cluster
    sandbox: Child
    sandbox_url: str
    ussd: UssdLoad
    var_dir: Path
    bench_url: str = ""  # the current tree's database
    fake: Child | None = None
    fake_url: str = ""
    results: dict[str, Series] = field(default_factory=dict)
    kill: dict[str, Any] = field(default_factory=dict)

    def serve_env(self, port: int, *, telegram: bool = False, **extra: str) -> dict[str, str]:
        env = clean_env(
            child_env(
                DATABASE_URL=self.bench_url,
                REGISTRY_URL=self.sandbox_url,
                REGISTRY_TOKEN=SANDBOX_TOKEN,
                BOT_SECRET_KEY=SECRET_KEY,
                BOT_VAR_DIR=str(self.var_dir),
                HTTP_HOST="127.0.0.1",
                HTTP_PORT=str(port),
                USSD_LOOKUP_BUDGET_S=str(LOOKUP_BUDGET_S),
                **LIMITS,
                LOG_LEVEL="WARNING",
                SIMULATOR="off",
            )
        )
        if telegram:
            from bench.fake_bot_api import TOKEN

            env.update(
                TELEGRAM_BOT_TOKEN=TOKEN,
                TELEGRAM_API_URL=self.fake_url,
                PUBLIC_URL=f"http://127.0.0.1:{port}",
                TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
            )
        env.update(extra)
        return env

    def start_serve(
        self,
        name: str,
        *,
        port: int | None = None,
        workers: int = 1,
        telegram: bool = False,
        messages_per_second: float | None = None,
    ) -> tuple[Child, str]:
        port = port or free_port()
        line = [sys.executable, "-m", "bot.cli", "serve"]
        if workers > 1:
            line += ["--workers", str(workers)]
        extra = {}
        if messages_per_second is not None:
            extra["TELEGRAM_MESSAGES_PER_SECOND"] = f"{messages_per_second:g}"
        child = self.run.start(name, line, self.serve_env(port, telegram=telegram, **extra))
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(child, f"{base}/healthz")
        if workers > 1:
            self._wait_for_line(child, "is serving on")
        return child, base

    def _wait_for_line(self, child: Child, text: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            child.check_alive()
            if text in child.log.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise BenchError(f"{child.name} never printed {text!r}:\n{child.tail()}")

    def checker(self, *children: Child) -> Callable[[], None]:
        def check() -> None:
            for child in (self.sandbox, *children):
                child.check_alive()

        return check

    def ussd_measure(self, target: Target, pids: Callable[[], list[int]]) -> Any:
        seconds = self.arguments.seconds

        async def measure(rate: float, warm: bool) -> Step:
            meter = None if warm else Meter(pids(), self.cluster, self.sandbox, None)
            return await self.ussd.step(target, rate, WARMUP_S if warm else seconds, meter)

        return measure

    async def ussd_series(
        self, label: str, children: list[Child], bases: list[str], rates: list[float]
    ) -> Series:
        target = Target([f"{base}/ussd" for base in bases])
        return await stepped(
            Series(label, "ussd"),
            rates,
            self.arguments.refine,
            self.ussd_measure(target, lambda: [child.pid for child in children]),
            self.checker(*children),
        )

    # The parts, in the order they run.

    async def part_ussd(self) -> None:
        bot, base = self.start_serve("serve")
        try:
            self.results["ussd"] = await self.ussd_series(
                "USSD, `bansos-bot serve`, one instance", [bot], [base], self.arguments.ussd_rates
            )
        finally:
            self.run.stop(bot)

    async def part_floor(self, floor: Child, base: str) -> None:
        self.results["floor"] = await self.ussd_series(
            "floor: the same USSD load against a trivial aiohttp handler",
            [floor],
            [base],
            self.arguments.floor_rates,
        )

    async def part_webhook(self) -> None:
        await self._webhook_series(
            "webhook-paced",
            "Telegram webhook, `serve` as shipped: replies paced to "
            "TELEGRAM_MESSAGES_PER_SECOND=30 (Telegram's limit)",
            self.arguments.paced_rates,
            messages_per_second=None,
        )
        await self._webhook_series(
            "webhook",
            f"Telegram webhook, `serve` with TELEGRAM_MESSAGES_PER_SECOND="
            f"{UNPACED_MESSAGES_PER_SECOND:g} (paid broadcasts; the fake Bot API never limits)",
            self.arguments.webhook_rates,
            messages_per_second=UNPACED_MESSAGES_PER_SECOND,
        )

    async def part_webhook_workers(self) -> None:
        await self._webhook_series(
            "webhook-workers",
            f"Telegram webhook, `serve --workers 2` with TELEGRAM_MESSAGES_PER_SECOND="
            f"{UNPACED_MESSAGES_PER_SECOND:g} (each worker takes half)",
            self.arguments.webhook_rates,
            messages_per_second=UNPACED_MESSAGES_PER_SECOND,
            workers=2,
        )

    async def _webhook_series(
        self,
        key: str,
        label: str,
        rates: list[float],
        *,
        messages_per_second: float | None,
        workers: int = 1,
    ) -> None:
        assert self.fake is not None
        unpaced = messages_per_second is not None
        before = self._fake_calls().get("setWebhook", 0)
        bot, base = self.start_serve(
            f"serve-{key}", telegram=True, messages_per_second=messages_per_second, workers=workers
        )
        try:
            deadline = time.monotonic() + 60
            # Each worker sets the webhook once it can reply.
            while self._fake_calls().get("setWebhook", 0) < before + workers:
                bot.check_alive()
                if time.monotonic() > deadline:
                    raise BenchError(f"the bot never set its webhook:\n{bot.tail()}")
                await asyncio.sleep(0.1)
            target = Target([f"{base}/telegram/webhook"])
            load = WebhookLoad(self.fake_url)
            seconds = self.arguments.seconds
            fake = self.fake

            async def measure(rate: float, warm: bool) -> Step:
                meter = None if warm else Meter([bot.pid], self.cluster, self.sandbox, fake)
                return await load.step(target, rate, WARMUP_S if warm else seconds, meter)

            self.results[key] = await stepped(
                Series(label, "webhook"),
                rates,
                self.arguments.refine if unpaced else 0,
                measure,
                self.checker(bot, self.fake),
            )
        finally:
            self.run.stop(bot)

    def _fake_calls(self) -> dict[str, int]:
        import urllib.request

        with urllib.request.urlopen(f"{self.fake_url}/bench/stats", timeout=5) as response:
            calls: dict[str, int] = json.loads(response.read())["calls"]
            return calls

    async def part_two(self) -> None:
        first, first_base = self.start_serve("serve-a")
        second, second_base = self.start_serve("serve-b")
        try:
            self.results["two"] = await self.ussd_series(
                "USSD, two `serve` instances, one database, round-robin",
                [first, second],
                [first_base, second_base],
                self.arguments.ussd_rates,
            )
        finally:
            self.run.stop(first, second)

    async def part_workers(self) -> None:
        group, base = self.start_serve("serve-workers", workers=2)
        try:
            self.results["workers"] = await self.ussd_series(
                "USSD, `bansos-bot serve --workers 2` (supervisor + 2 workers, one port)",
                [group],
                [base],
                self.arguments.ussd_rates,
            )
        finally:
            self.run.stop(group)

    async def part_kill(self) -> None:
        arguments = self.arguments
        rate = arguments.kill_rate
        if rate is None:
            one = self.results.get("ussd")
            rate = max(100.0, round(0.6 * one.saturation / 10) * 10 if one else 150.0)
        port = free_port()
        first, first_base = self.start_serve("serve-a", port=port)
        second, second_base = self.start_serve("serve-b")
        children = [first, second]
        target = Target([f"{first_base}/ussd", f"{second_base}/ussd"])
        events: dict[str, float] = {}

        async def kill_and_restart() -> None:
            started = time.perf_counter()
            await asyncio.sleep(arguments.kill_after)
            first.process.kill()
            first.process.wait()
            events["killed"] = time.perf_counter() - started
            await asyncio.sleep(arguments.restart_after)
            again = self.run.start("serve-a-restarted", first.process.args, self.serve_env(port))
            children[0] = again
            events["restarted"] = time.perf_counter() - started
            import aiohttp

            async with aiohttp.ClientSession() as http:
                while again.alive():
                    with contextlib.suppress(aiohttp.ClientError, OSError):
                        async with http.get(f"{first_base}/healthz") as response:
                            if response.status == 200:
                                events["ready"] = time.perf_counter() - started
                                return
                    await asyncio.sleep(0.05)

        log(
            f"\nkill test: two `serve` instances at {rate:.0f} req/s for "
            f"{arguments.kill_seconds:.0f} s; instance A SIGKILLed at {arguments.kill_after:.0f}"
            f" s, started again {arguments.restart_after:.0f} s later on its port"
        )
        try:
            await self.ussd.step(target, min(WARMUP_RATE, rate), WARMUP_S, None)
            await asyncio.sleep(STEP_PAUSE_S)
            step = await self.ussd.step(
                target, rate, arguments.kill_seconds, None, during=kill_and_restart
            )
        finally:
            self.run.stop(*children)
        self.kill = {"step": step, "events": events}
        log(
            f"  achieved {step.achieved:.0f} req/s, p50 {step.p50 * 1000:.1f} ms, "
            f"p99 {step.p99 * 1000:.1f} ms, max {step.top * 1000:.1f} ms, "
            f"errors {step.error_count}{_error_kinds(step)}, "
            f"requests sent again to the other instance {step.retried}"
        )
        when = ", ".join(f"{name} at {value:.1f} s" for name, value in events.items())
        log(f"  A {when} (from the start of the timed run)")

    async def part_baseline(self) -> None:
        arguments = self.arguments
        tree = Path(tempfile.mkdtemp(prefix="bansos-load-baseline-"))
        self.run.trees.append(tree)
        archive = command(["git", "-C", str(REPOSITORY), "archive", arguments.baseline_commit])
        if archive.returncode != 0:
            raise BenchError(f"git archive {arguments.baseline_commit}: {archive.stderr!r}")
        command(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        url = await self.cluster.create_database("baseline")
        port = free_port()
        env = clean_env(dict(os.environ))
        env.update(
            PYTHONPATH=str(tree),
            DATABASE_URL=url,
            REGISTRY_URL=self.sandbox_url,
            REGISTRY_TOKEN=SANDBOX_TOKEN,
            BOT_SECRET_KEY=SECRET_KEY,
            BOT_VAR_DIR=str(tree / "var"),
            HTTP_HOST="127.0.0.1",
            HTTP_PORT=str(port),
            USSD_LOOKUP_BUDGET_S=str(LOOKUP_BUDGET_S),
            LOG_LEVEL="WARNING",
            **BASELINE_LIMITS,
        )
        where = command(
            [sys.executable, "-c", "import bot; print(bot.__file__)"], cwd=tree, env=env
        )
        if not where.stdout.decode().strip().startswith(str(tree)):
            raise BenchError(f"the baseline's bot is not imported from its tree: {where!r}")
        done = command(python_cli("migrate"), cwd=tree, env=env)
        if done.returncode != 0:
            raise BenchError(f"the baseline's migrate failed:\n{done.stderr.decode()}")
        serve_bot = [sys.executable, str(tree / "bench" / "ussd_status.py"), "--serve-bot"]
        old = self.run.start("baseline-serve-bot", serve_bot, env, cwd=tree)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(old, f"{base}/healthz")
            self.results["baseline"] = await self.ussd_series(
                f"USSD, the old commit {arguments.baseline_commit}: its "
                "bench/ussd_status.py --serve-bot, one instance",
                [old],
                [base],
                arguments.baseline_rates,
            )
        finally:
            self.run.stop(old)
        # The current tree the same way, on a fresh database of its own, right after.
        fresh = await self.cluster.create_database("current")
        migrate(fresh, self.var_dir)
        database = Database("postgresql", fresh, self.cluster.postmaster_pid)
        folder = self.run.workdir / "serve-bot"
        folder.mkdir(exist_ok=True)
        bot, ussd_url = start_bot(
            database, self.sandbox_url, folder, log_level="WARNING", tag="serve-bot"
        )
        self.run.children.append(bot)
        try:
            self.results["servebot"] = await self.ussd_series(
                "USSD, this tree: bench/ussd_status.py --serve-bot, one instance",
                [bot],
                [ussd_url.removesuffix("/ussd")],
                arguments.ussd_rates,
            )
        finally:
            self.run.stop(bot)


# --- the report -----------------------------------------------------------------------------


def ratio(mine: float, base: float) -> float:
    return mine / base if base else float("nan")


def _versus(mine: Series, base: Series, *, peak: bool = True, cpu: bool = False) -> str:
    """Saturation of `mine` over `base`, with the peaks' ratio and the CPU compared."""
    text = (
        f"{mine.saturation:.0f} / {base.saturation:.0f} = "
        f"{ratio(mine.saturation, base.saturation):.2f}x"
    )
    details = [f"peak achieved {ratio(mine.peak, base.peak):.2f}x"] if peak else []
    if cpu:
        details.append(cpu_compared(base, mine))
    return f"{text} ({'; '.join(details)})" if details else text


def cpu_compared(base: Series, mine: Series) -> str:
    """Bot CPU per request of both at the highest offered rate both served cleanly."""

    def passing(series: Series) -> dict[float, Step]:
        return {s.offered: s for s in series.counted if s.passes() and s.done and s.cpu}

    theirs, ours = passing(base), passing(mine)
    shared = sorted(set(theirs) & set(ours))
    if not shared:
        return "no rate both passed"
    rate = shared[-1]
    old = theirs[rate].cpu["bot"] / theirs[rate].done * 1000
    new = ours[rate].cpu["bot"] / ours[rate].done * 1000
    return f"CPU per request at {rate:.0f} req/s {old:.2f} / {new:.2f} ms = {old / new:.2f}x less"


def summary(bench: Bench) -> list[str]:
    results = bench.results
    lines = [
        "",
        "== saturation (highest offered rate: achieved ≥ 95 %, p99 < 1 s, 0 errors) ==",
        "  (bot CPU/req: median over the passing steps; other: CPU of processes not ours, "
        "mean over the steps)",
    ]
    for key, series in results.items():
        unit = "updates/s" if series.kind == "webhook" else "req/s"
        lines.append(
            f"  {key:<14} {series.saturation_text():>6} {unit:<10} peak achieved "
            f"{series.peak:5.0f}   bot CPU/req {series.cpu_per_request_ms:5.2f} ms   "
            f"other {series.other_cores:4.2f} cores   {series.label}"
        )
    lines.append(f"CPU at each peak (cores of {os.cpu_count()}; bot = the service, or the floor):")
    for key, series in results.items():
        peak = max(series.counted, key=lambda step: step.achieved, default=None)
        if peak is None or not peak.cpu:
            continue
        seconds = peak.elapsed or 1.0
        used = ", ".join(f"{name} {value / seconds:.2f}" for name, value in peak.cpu.items())
        total = sum(peak.cpu.values()) / seconds
        lines.append(f"  {key:<14} {used}; all {total:.2f}")
    one, floor = results.get("ussd"), results.get("floor")
    if one and floor:
        lines.append("")
        lines.append(
            f"service / floor: saturation {one.saturation_text()} / {floor.saturation_text()} = "
            f"{ratio(one.saturation, floor.saturation):.2f}"
            f"{' (floor not saturated: at most this)' if floor.exhausted else ''}"
        )
        lines.append("latency / floor at the same offered rate:")
        for step in one.counted:
            other = floor.at(step.offered)
            if other is None or step.refine:
                continue
            lines.append(
                f"  {step.offered:>6.0f} req/s: p50 {step.p50 * 1000:6.1f} / "
                f"{other.p50 * 1000:4.1f} ms = {ratio(step.p50, other.p50):5.1f}x, "
                f"p99 {step.p99 * 1000:7.1f} / {other.p99 * 1000:5.1f} ms = "
                f"{ratio(step.p99, other.p99):6.1f}x"
            )
    targets: list[tuple[str, str, bool | None]] = []
    if one:
        at200 = one.at(200.0)
        if at200 is not None:
            targets.append(
                (
                    "USSD p99 < 100 ms at 200 req/s, one instance",
                    f"p99 {at200.p99 * 1000:.1f} ms, {at200.error_count} errors",
                    at200.p99 < 0.1 and at200.error_count == 0,
                )
            )
        targets.append(
            (
                "USSD saturation ≥ 400 req/s, one instance",
                f"{one.saturation_text()} req/s",
                one.saturation >= 400,
            )
        )
    hooked = results.get("webhook")
    if hooked:
        targets.append(
            (
                "webhook ≥ 300 updates/s (replies; TELEGRAM_MESSAGES_PER_SECOND=1000)",
                f"{hooked.saturation_text()} updates/s",
                hooked.saturation >= 300,
            )
        )
    hooked2 = results.get("webhook-workers")
    if hooked2:
        targets.append(
            (
                "webhook ≥ 300 updates/s, `serve --workers 2` (TELEGRAM_MESSAGES_PER_SECOND=1000)",
                f"{hooked2.saturation_text()} updates/s",
                hooked2.saturation >= 300,
            )
        )
    paced = results.get("webhook-paced")
    if paced:
        targets.append(
            (
                # Telegram's own limit without paid broadcasts: no service can do more.
                "(no target) webhook as shipped, replies paced to Telegram's 30/s",
                f"peak {paced.peak:.0f} replies/s",
                None,
            )
        )
    if bench.kill:
        step = bench.kill["step"]
        targets.append(
            (
                "two instances, one killed and restarted: no errors",
                f"{step.error_count} errors, {step.retried} sent again, "
                f"p99 {step.p99 * 1000:.0f} ms, max {step.top * 1000:.0f} ms",
                step.error_count == 0,
            )
        )
    base, fair, workers, two = (results.get(k) for k in ("baseline", "servebot", "workers", "two"))
    if base and fair:
        targets.append(
            (
                "one instance ≥ 3x the old commit (same kind of process)",
                _versus(fair, base, cpu=True),
                ratio(fair.saturation, base.saturation) >= 3,
            )
        )
    if base and one:
        targets.append(
            (
                "one instance ≥ 3x the old commit (real `serve`)",
                _versus(one, base, cpu=True),
                ratio(one.saturation, base.saturation) >= 3,
            )
        )
    if workers and one:
        targets.append(
            (
                "`--workers 2` ≥ 1.7x one instance",
                _versus(workers, one),
                ratio(workers.saturation, one.saturation) >= 1.7,
            )
        )
    if two and one:
        targets.append(("(no target) two instances / one", _versus(two, one, peak=False), None))
    lines += ["", "== targets =="]
    for name, figure, passed in targets:
        verdict = "    " if passed is None else ("PASS" if passed else "MISS")
        lines.append(f"  {verdict}  {name}: {figure}")
    return lines


# --- the floor (a child process) ------------------------------------------------------------


def serve_floor(port: int) -> int:
    """The floor: the same HTTP stack and form parsing, no dialog, no database."""
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        form = await request.post()
        prefix = "END" if str(form.get("text", "")).count("*") == 2 else "CON"
        return web.Response(text=f"{prefix} {len(form)}", content_type="text/plain")

    async def alive(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/ussd", answer)
    app.router.add_get("/healthz", alive)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
    return 0


# --- main -----------------------------------------------------------------------------------


def _rates(text: str) -> list[float]:
    rates = [float(value) for value in text.split(",") if value.strip()]
    if not rates or any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError("a comma-separated list of positive rates")
    return rates


def _parts(text: str) -> list[str]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown parts {sorted(unknown)}; known: {PARTS}")
    return parts


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--parts", type=_parts, default=list(PARTS), help=",".join(PARTS))
    parser.add_argument("--seconds", type=float, default=8.0, help="arrivals per step (8)")
    parser.add_argument(
        "--ussd-rates",
        type=_rates,
        default=_rates("100,200,300,400,500,600,700,800,1000,1200"),
        help="USSD requests/s, stepped (serve, two, workers, this tree's --serve-bot)",
    )
    parser.add_argument(
        "--floor-rates",
        type=_rates,
        default=_rates("100,200,400,800,1600,2400,3200,4000,5000,6000"),
    )
    parser.add_argument(
        "--baseline-rates", type=_rates, default=_rates("50,100,150,200,250,300,400,500")
    )
    parser.add_argument(
        "--webhook-rates",
        type=_rates,
        default=_rates("50,100,200,300,400,500,600,800"),
        help="updates/s with the pacing lifted",
    )
    parser.add_argument(
        "--paced-rates", type=_rates, default=_rates("20,50"), help="updates/s as shipped"
    )
    parser.add_argument(
        "--refine",
        type=int,
        default=2,
        help="halvings between the last passing and first failing rate (2)",
    )
    parser.add_argument("--kill-rate", type=float, help="req/s (default 60%% of one instance's)")
    parser.add_argument("--kill-seconds", type=float, default=20.0)
    parser.add_argument("--kill-after", type=float, default=5.0)
    parser.add_argument("--restart-after", type=float, default=5.0)
    parser.add_argument("--baseline-commit", default="1ce1f81")
    parser.add_argument("--households", type=int, default=20_000)
    parser.add_argument(
        "--snapshot",
        metavar="REV",
        help="measure `git archive REV` (with this bench/) instead of the work tree",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


async def amain(arguments: argparse.Namespace, run: Run) -> int:
    import uvloop

    parts = arguments.parts
    head = os.environ.get(SNAPSHOT_ENV) or describe_tree()
    log(
        f"bench/load.py at {head or '?'}; {os.cpu_count()} cores; load average "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; Python {platform.python_version()}; "
        f"generator on {type(asyncio.get_running_loop()).__module__.split('.')[0]} "
        f"(uvloop {uvloop.__version__}); {arguments.seconds:.0f} s per step"
    )
    log("starting PostgreSQL (pg_stat_statements), the sandbox registry…")
    cluster = await start_cluster(run)
    var_dir = run.workdir / "var"
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    sandbox = run.start(
        "sandbox",
        python_cli("sandbox-registry", "--port", str(port), "--households",
                   str(arguments.households), "--seed", str(SANDBOX_SEED)),
        clean_env(child_env(LOG_LEVEL="WARNING")),
    )  # fmt: skip
    wait_until_ready(
        sandbox,
        f"{sandbox_url}/sandbox/people?limit=1",
        {"Authorization": f"Bearer {SANDBOX_TOKEN}"},
    )
    people = await fetch_people(sandbox_url, 5000)
    from bench.ussd_status import Expected

    expected = Expected.load()
    ussd = UssdLoad(people, (expected.service_busy, expected.registry_busy, expected.throttled))
    bench = Bench(arguments, run, cluster, sandbox, sandbox_url, ussd, var_dir)
    bench.bench_url = await cluster.create_database("bench")
    migrate(bench.bench_url, var_dir)
    log(
        f"{len(people)} sandbox people; statements counted by "
        f"{'pg_stat_statements' if cluster.stats is not None else 'nothing (n/a)'}"
    )
    if "webhook" in parts or "webhook-workers" in parts:
        fake_port = free_port()
        bench.fake_url = f"http://127.0.0.1:{fake_port}"
        bench.fake = run.start(
            "fake-bot-api",
            [sys.executable, str(ROOT / "bench" / "fake_bot_api.py"), "--port", str(fake_port)],
            clean_env(child_env()),
        )
        wait_until_ready(bench.fake, f"{bench.fake_url}/healthz")

    if "ussd" in parts:
        await bench.part_ussd()
    if "floor" in parts:
        floor_port = free_port()
        floor = run.start(
            "floor",
            [sys.executable, str(SCRIPT), "--serve-floor", str(floor_port)],
            clean_env(child_env()),
        )
        base = f"http://127.0.0.1:{floor_port}"
        wait_until_ready(floor, f"{base}/healthz")
        try:
            await bench.part_floor(floor, base)
        finally:
            run.stop(floor)
    if "webhook" in parts:
        await bench.part_webhook()
    if "two" in parts:
        await bench.part_two()
    if "workers" in parts:
        await bench.part_workers()
    if "webhook-workers" in parts:
        await bench.part_webhook_workers()
    if "kill" in parts:
        await bench.part_kill()
    if "baseline" in parts:
        await bench.part_baseline()
    for line in summary(bench):
        log(line)
    if cluster.stats is not None:
        await cluster.stats.close()
    return 0


def describe_tree() -> str:
    head = command(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]).stdout.decode()
    head = head.strip() or "?"
    status = command(["git", "-C", str(ROOT), "status", "--short", "--", "bot", "handlers"])
    changed = [line[3:] for line in status.stdout.decode().splitlines()]
    if changed:
        head += f" (uncommitted in bot/, handlers/: {', '.join(changed)})"
    return head


def run_snapshot(revision: str, argv: list[str]) -> int:
    """This benchmark again, from `git archive REVISION` with this bench/ folder copied in:
    the code measured stays put while the work tree is being edited."""
    tree = Path(tempfile.mkdtemp(prefix="bansos-load-snapshot-"))
    child: subprocess.Popen[bytes] | None = None
    try:
        archive = command(["git", "-C", str(REPOSITORY), "archive", revision])
        if archive.returncode != 0:
            print(f"bench: git archive {revision}: {archive.stderr.decode()}", file=sys.stderr)
            return 1
        command(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        for source in (ROOT / "bench").glob("*.py"):
            shutil.copy2(source, tree / "bench" / source.name)
        sha = command(["git", "-C", str(REPOSITORY), "rev-parse", "--short", revision]).stdout
        env = dict(os.environ, PYTHONPATH=str(tree), **{REPOSITORY_ENV: str(REPOSITORY)})
        env[SNAPSHOT_ENV] = f"{sha.decode().strip()} (snapshot of {revision}, this bench/)"
        child = subprocess.Popen(
            [sys.executable, str(tree / "bench" / "load.py"), *argv],
            cwd=tree,
            env=env,
            start_new_session=True,  # Ctrl-C reaches us; we pass it on as SIGTERM
            preexec_fn=_die_with_parent,
        )
        return child.wait()
    except KeyboardInterrupt:
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)  # it stops everything it started
            child.wait()
        return 130
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    arguments = parse_arguments(argv)
    if arguments.serve_floor:
        return serve_floor(arguments.serve_floor)
    # Ctrl-C and SIGTERM unwind through the finally below: every child is stopped.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if arguments.snapshot:
        rest = [a for a in argv if not a.startswith("--snapshot=")]
        if "--snapshot" in rest:  # and its value after it
            at = rest.index("--snapshot")
            del rest[at : at + 2]
        return run_snapshot(arguments.snapshot, rest)
    run = Run(Path(tempfile.mkdtemp(prefix="bansos-load-")))
    from bot import event_loop

    try:
        return event_loop.run(amain(arguments, run))
    except BenchError as problem:
        print(f"bench: {problem}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        run.close()
        if arguments.keep:
            print(f"work folder kept: {run.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(run.workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
