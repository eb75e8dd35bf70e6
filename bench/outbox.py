#!/usr/bin/env python
"""Benchmark: the outbox on PostgreSQL, as an operator runs it, at a fixed arrival rate.

Not part of the test run. Processes (the machine they were written on has 2 cores):

* a throwaway PostgreSQL cluster (tests/support/postgres.py, fsync off), with a database
  of its own, migrated with bot.storage.migrate.upgrade_to_head;
* the sandbox registry (`bansos-bot sandbox-registry`), its own process;
* the delivery worker (`bansos-bot outbox`), its own process, pointed at that database,
  the sandbox and a blob folder holding the photos;
* the filer: this process. It files objections (one 1280×960 photo each) through
  FilingService.submit, each in its own database.transaction() and from its own filer, on
  an open loop: filing i starts at t0 + i / rate whether or not the earlier ones have
  finished (at most 30 at once, the bot's pool; it says so when it falls behind).

First 100 untimed filings warm everything up (--warmup). Then it waits until the outbox
has no pending row, checks at the sandbox that every filing arrived exactly once with its
photo, and prints throughput, filing → registry time (outbox.delivered_at −
outbox.created_at), the worker's peak memory and CPU per filing.

--backlog files everything first and starts the worker only then: the drain rate is the
worker's ceiling, without the filer competing for the cores.

A floor is measured in the same run: as many submissions sent straight to a fresh sandbox
with RegistryClient.submit (no database, no outbox), 8 at once like the worker, and the
outbox's figures are printed as ratios of it.

    .venv/bin/python -m bench.outbox [--filings 5000] [--rate 250] [--households 20000]

With --profile the worker runs under pyinstrument (1 ms sampling, the whole event-loop
thread), which slows it down: its figures are then not the timed ones. --worker-script
runs the worker as `python FILE outbox` instead of `bansos-bot outbox` (a wrapper that
monkeypatches an experimental change, say).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import os
import random
import runpy
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `tests.support` and `bench` are not installed packages
    sys.path.insert(0, str(ROOT))

from bench.cluster import Cluster, start_cluster, stop_cluster  # noqa: E402
from bench.ussd_status import (  # noqa: E402 - after the path is set
    BenchError,
    Child,
    child_env,
    cluster_cpu_s,
    flat_profile,
    free_port,
    machine_busy_s,
    process_cpu_s,
    python_cli,
    quantile,
    self_cpu_s,
    wait_until_ready,
)

SECRET_KEY = "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-0002"
SANDBOX_TOKEN = "sandbox-token"
SANDBOX_SEED = 42
DATABASE_NAME = "bansos_outbox_bench"
WORKER_CONCURRENCY = 8  # OutboxWorker's default, as build_services makes it
PHOTO_SIZE = (1280, 960)
PROGRAMMES = (None, "PKH", "BPNT", "PBI-JK", "BLT", "PIP")
SAMPLE_LIMIT = 1000  # the sandbox's maximum per /sandbox/people call
TARGET_RATE = 200.0  # filings/s delivered
TARGET_P95_S = 2.0  # filing → registry
RSS_SAMPLE_S = 0.2
POLL_S = 0.25
PROGRESS_S = 10.0
BEHIND_TOLERANCE_S = 0.1  # p95 start lag beyond this: the filer fell behind its schedule
WORKER_READY_S = 60
POOL_WARM = 10  # the bot's pool_size: connections the filer opens before t0
FILER_IN_FLIGHT = 30  # the bot's pool_size + max_overflow
MB = 1024 * 1024
TICK = os.sysconf("SC_CLK_TCK")


class HardDeadline(KeyboardInterrupt):
    """The run's hard time limit passed (a KeyboardInterrupt, so asyncio lets it through)."""


@dataclass(frozen=True)
class Photo:
    sha256: str
    content: bytes


@dataclass
class FilingRun:
    """What the filer did: one entry per filing it started."""

    offered: int
    rate: float
    warmup_photo_of_ticket: dict[str, str] = field(default_factory=dict)  # untimed filings
    t0_wall: float = 0.0  # time.time() of the schedule's start
    wall_s: float = 0.0  # schedule start → last commit
    start_lag_s: list[float] = field(default_factory=list)
    transaction_s: list[float] = field(default_factory=list)
    photo_of_ticket: dict[str, str] = field(default_factory=dict)  # bot ticket → photo sha
    refused: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def accepted(self) -> int:
        return len(self.photo_of_ticket)

    @property
    def all_photos_of_ticket(self) -> dict[str, str]:
        return {**self.warmup_photo_of_ticket, **self.photo_of_ticket}


@dataclass
class CpuSnapshot:
    worker: float
    sandbox: float
    postgres: float
    bench: float
    machine: float

    @classmethod
    def take(cls, worker: int, sandbox: int, postmaster: int | None) -> CpuSnapshot:
        return cls(
            worker=process_cpu_s(worker),
            sandbox=process_cpu_s(sandbox),
            postgres=cluster_cpu_s(postmaster) if postmaster is not None else 0.0,
            bench=self_cpu_s(),
            machine=machine_busy_s()[0],
        )

    def used_since(self, before: CpuSnapshot) -> dict[str, float]:
        used = {
            "worker": self.worker - before.worker,
            "sandbox": self.sandbox - before.sandbox,
            "postgres": self.postgres - before.postgres,
            "bench (filer)": self.bench - before.bench,
        }
        # Whatever else ran meanwhile competes for the same cores: when it is large, the
        # figures are pessimistic.
        used["other processes"] = max(0.0, self.machine - before.machine - sum(used.values()))
        return used


@dataclass
class Delivery:
    """The outbox as the database has it once the worker is done."""

    states: Counter[str]
    latencies_s: list[float]  # delivered_at − created_at of delivered rows
    first_created: float | None  # epoch seconds
    last_delivered: float | None
    retried: int  # rows with more than one attempt
    last_errors: Counter[str]
    registry_ticket_of: dict[str, str | None]  # filing id → registry ticket recorded
    id_of_ticket: dict[str, str]  # bot ticket → filing id
    cpu: dict[str, float] = field(default_factory=dict)
    drain_wall_s: float = 0.0  # schedule start → the poll that saw nothing pending
    rss_start_mb: float = 0.0
    rss_peak_sampled_mb: float = 0.0
    hwm_mb: float = 0.0
    warnings_logged: int = 0
    errors_logged: int = 0
    cpu_user_s: float = 0.0
    cpu_system_s: float = 0.0


@dataclass
class Arrival:
    """What /sandbox/queue shows against what was filed."""

    items: int
    distinct: int
    unknown: int
    missing: int
    replayed: int
    photo_mismatches: int
    ticket_mismatches: int

    def ok(self, expected: int) -> bool:
        return (
            self.items == expected
            and self.distinct == expected
            and not (self.unknown or self.missing or self.photo_mismatches)
            and not self.ticket_mismatches
        )


@dataclass
class Floor:
    submissions: int
    concurrency: int
    warmup: int
    wall_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=dict)
    queued: int = 0
    queued_distinct: int = 0

    @property
    def rate(self) -> float:
        return len(self.latencies_s) / self.wall_s if self.wall_s else float("nan")


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def check(self, what: str) -> None:
        if self.remaining() <= 0:
            raise BenchError(f"the run's time limit ({self.seconds:.0f} s) passed during {what}")


# --- photos -------------------------------------------------------------------------------


def make_photos(count: int, seed: int = 7) -> list[bytes]:
    """`count` distinct 1280×960 JPEGs that weigh what a phone photo does after Telegram's
    compression (~120–220 KB): shapes and lines, slightly blurred, with sensor-like noise."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(seed)  # reproducible pictures, not secrets
    width, height = PHOTO_SIZE
    margin = 64
    # One noise field, cropped at a different offset per photo (generating it is the slow part).
    noise = Image.merge(
        "RGB", [Image.effect_noise((width + margin, height + margin), 40) for _ in range(3)]
    )
    gradient = Image.linear_gradient("L").resize(PHOTO_SIZE)
    photos = []
    for _ in range(count):
        sky = tuple(rng.randrange(120, 230) for _ in range(3))
        ground = tuple(rng.randrange(30, 140) for _ in range(3))
        image = Image.new("RGB", PHOTO_SIZE, sky)
        image.paste(Image.new("RGB", PHOTO_SIZE, ground), mask=gradient)
        draw = ImageDraw.Draw(image)
        for _ in range(60):
            x, y = rng.randrange(width), rng.randrange(height)
            box = (x, y, x + rng.randrange(20, 400), y + rng.randrange(20, 300))
            colour = tuple(rng.randrange(256) for _ in range(3))
            (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=colour)
        for _ in range(200):
            x, y = rng.randrange(width), rng.randrange(height)
            end = (x + rng.randrange(-200, 200), y + rng.randrange(-200, 200))
            colour = tuple(rng.randrange(256) for _ in range(3))
            draw.line((x, y, *end), fill=colour, width=rng.randrange(1, 5))
        image = image.filter(ImageFilter.GaussianBlur(1.2))
        dx, dy = rng.randrange(margin), rng.randrange(margin)
        grain = noise.crop((dx, dy, dx + width, dy + height))
        image = Image.blend(image, grain, rng.uniform(0.10, 0.20))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=80)
        photos.append(buffer.getvalue())
    return photos


# --- /proc ----------------------------------------------------------------------------------


def user_system_s(pid: int) -> tuple[float, float]:
    """(utime, stime) of a live process, in seconds, from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0.0
    fields = raw[raw.rfind(")") + 2 :].split()  # the name may hold spaces
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def proc_status_mb(pid: int, key: str) -> float:
    """VmRSS, VmHWM … of a live process, in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024 / MB
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


# --- the sandbox and the worker -------------------------------------------------------------


def start_sandbox(households: int, workdir: Path, tag: str) -> tuple[Child, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sandbox = Child.start(
        f"sandbox registry ({tag})",
        python_cli(
            "sandbox-registry",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--households",
            str(households),
            "--seed",
            str(SANDBOX_SEED),
        ),
        child_env(
            REGISTRY_TOKEN=SANDBOX_TOKEN,
            BOT_SECRET_KEY=SECRET_KEY,
            BOT_VAR_DIR=str(workdir / "var"),
            LOG_LEVEL="WARNING",
        ),
        workdir / f"sandbox-{tag}.log",
    )
    wait_until_ready(sandbox, f"{url}/sandbox/people?limit=1")
    return sandbox, url


def start_worker(
    arguments: argparse.Namespace,
    database_url: str,
    registry_url: str,
    workdir: Path,
    profile_out: Path | None,
) -> Child:
    env = child_env(
        DATABASE_URL=database_url,
        REGISTRY_URL=registry_url,
        REGISTRY_TOKEN=SANDBOX_TOKEN,
        BOT_SECRET_KEY=SECRET_KEY,
        BLOB_DIR=str(workdir / "blobs"),
        BOT_VAR_DIR=str(workdir / "var"),
        LOG_LEVEL=arguments.worker_log_level,
    )
    if profile_out is not None:
        command = [
            sys.executable,
            "-m",
            "bench.outbox",
            "--worker-under-profiler",
            str(profile_out),
        ]
        if arguments.worker_script is not None:
            command += ["--worker-script", str(arguments.worker_script)]
    elif arguments.worker_script is not None:
        command = [sys.executable, str(arguments.worker_script), "outbox"]
    else:
        command = python_cli("outbox")
    worker = Child.start("outbox worker", command, env, workdir / "worker.log")
    deadline = time.monotonic() + WORKER_READY_S
    while "delivering filings" not in worker.log.read_text(errors="replace"):
        worker.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"the outbox worker did not start in {WORKER_READY_S} s")
        time.sleep(0.05)
    return worker


def worker_under_profiler(out: Path, script: Path | None) -> int:
    """Internal (--worker-under-profiler): `bansos-bot outbox` under pyinstrument."""
    from pyinstrument import Profiler

    # async_mode "disabled": sample the whole event-loop thread, idle time included.
    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    code: Any = 0
    try:
        if script is not None:
            sys.argv = [str(script), "outbox"]
            runpy.run_path(str(script), run_name="__main__")
        else:
            from bot.cli import main as cli_main

            code = cli_main(["outbox"])
    except SystemExit as leaving:
        code = leaving.code
    finally:
        session = profiler.stop()
        out.with_suffix(".flat.txt").write_text(flat_profile(session))
        out.with_suffix(".tree.txt").write_text(
            profiler.output_text(unicode=True, color=False, show_all=False)
        )
    return int(code or 0)


async def fetch_people(registry_url: str, wanted: int) -> list[tuple[str, str]]:
    from registry_client import RegistryClient

    people: dict[str, str] = {}
    async with RegistryClient(registry_url, SANDBOX_TOKEN) as registry:
        for programme in PROGRAMMES:
            for nik, name in await registry.sample_people(SAMPLE_LIMIT, programme):
                people.setdefault(nik, name)
            if len(people) >= wanted:
                break
    if not people:
        raise BenchError("the sandbox registry returned no people")
    return list(people.items())


# --- filing ---------------------------------------------------------------------------------


def filer_of(number: int) -> Any:
    from bot.filings import Filer

    address = str(6_281_000_000_000 + number)  # a Telegram chat id, distinct per filing
    address_hash = hashlib.sha256(f"bench-filer:{address}".encode()).hexdigest()
    return Filer(channel="telegram", address=address, address_hash=address_hash)


def objection_about(nik: str, name: str, photo_sha256: str) -> Any:
    from bot.filings import FilingDraft, FilingPhoto

    return FilingDraft(
        kind="objection",
        language="id",
        subject_nik=nik,
        subject_name=name,
        reason_code="owns_car",
        text="Penerima punya mobil dan rumah bagus, tidak layak menerima bantuan.",
        fields={"sort": "recipient_not_eligible"},
        photos=(FilingPhoto(photo_sha256, "house_front"),),
        filer_kecamatan=nik[:6],  # where the subject's household is registered
    )


async def file_and_drain(
    arguments: argparse.Namespace,
    cluster: Cluster,
    people: Sequence[tuple[str, str]],
    photos: Sequence[Photo],
    # Blocks while the worker starts up (nothing else runs then). Called from this thread:
    # a child started from a worker thread would get its parent-death SIGTERM when that
    # thread ends.
    launch_worker: Callable[[], Child],
    sandbox: Child,
    deadline: Deadline,
) -> tuple[FilingRun, Delivery]:
    """File on the open-loop schedule with the worker running (or, with --backlog, all
    filings first and then the worker), wait until the outbox is drained, read it back."""
    from bot.app import utc_now
    from bot.crypto import KeyRing
    from bot.filing_service import FilingService
    from bot.filings import AreaRule, FilingAccepted
    from bot.storage.database import open_database

    database = open_database(cluster.url)  # the bot's own engine settings
    keys = KeyRing.from_secret(SECRET_KEY)
    service = FilingService(keys, filings_per_day=5, area_rule=AreaRule.KECAMATAN, clock=utc_now)
    run = FilingRun(offered=arguments.filings, rate=arguments.rate)
    rss: list[float] = []
    stop_sampling = asyncio.Event()

    async def sample_rss(worker: Child) -> None:
        while not stop_sampling.is_set():
            rss.append(proc_status_mb(worker.pid, "VmRSS"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_sampling.wait(), RSS_SAMPLE_S)

    # At most as many filings at once as the pool has connections: the rest wait here,
    # in order, rather than in the pool, whose 30 s checkout timeout would fail them.
    slots = asyncio.Semaphore(FILER_IN_FLIGHT)

    async def file_one(number: int, scheduled: float | None = None) -> None:
        nik, name = people[number % len(people)]
        photo = photos[number % len(photos)]
        async with slots:
            started = time.perf_counter()
            if scheduled is not None:
                run.start_lag_s.append(started - scheduled)
            try:
                async with database.transaction() as session:
                    outcome = await service.submit(
                        session, filer_of(number), objection_about(nik, name, photo.sha256)
                    )
            except Exception as problem:  # counted and reported
                run.errors[type(problem).__name__] += 1
                return
        if scheduled is None:  # warm-up: untimed
            if isinstance(outcome, FilingAccepted):
                run.warmup_photo_of_ticket[outcome.ticket] = photo.sha256
            return
        run.transaction_s.append(time.perf_counter() - started)
        if isinstance(outcome, FilingAccepted):
            run.photo_of_ticket[outcome.ticket] = photo.sha256
        else:
            run.refused[str(outcome.reason)] += 1

    async def hold_a_connection() -> None:
        async with database.transaction():
            await asyncio.sleep(0.05)

    async def file_timed(first: int) -> None:
        """The open-loop schedule (--backlog: closed loop, as fast as the pool allows)."""
        t0 = time.perf_counter() + 0.05
        tasks = []
        for index in range(arguments.filings):
            scheduled = t0 + index / arguments.rate
            if not arguments.backlog:
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(file_one(first + index, scheduled)))
        await asyncio.gather(*tasks)
        run.wall_s = time.perf_counter() - t0

    try:
        # Untimed: the filer's pool at its steady size.
        await asyncio.gather(*(hold_a_connection() for _ in range(POOL_WARM)))
        first_timed = 0
        if arguments.backlog:
            await file_timed(first_timed)
            print(f"  {run.accepted} filings queued; starting the worker…", flush=True)
            worker = launch_worker()
        else:
            worker = launch_worker()
            # Untimed: a few filings the worker delivers before t0 (first-use costs:
            # statement caches, connections, lazy imports), filed as the worker does them.
            for start in range(0, arguments.warmup, WORKER_CONCURRENCY):
                batch = range(start, min(start + WORKER_CONCURRENCY, arguments.warmup))
                await asyncio.gather(*(file_one(number) for number in batch))
            if arguments.warmup:
                await wait_for_outbox(database, worker, sandbox, min(60.0, deadline.remaining()))
            first_timed = arguments.warmup
        rss_start = proc_status_mb(worker.pid, "VmRSS")
        user_before, system_before = user_system_s(worker.pid)
        sampler = asyncio.create_task(sample_rss(worker))
        before = CpuSnapshot.take(worker.pid, sandbox.pid, cluster.postmaster_pid)
        started = time.perf_counter()
        started_wall = time.time()
        if not arguments.backlog:
            await file_timed(first_timed)

        # Until nothing is pending, within the drain timeout and the run's time limit.
        timeout = min(arguments.drain_timeout, deadline.remaining() - 60)
        await wait_for_outbox(database, worker, sandbox, timeout, progress=True)
        drain_wall = time.perf_counter() - started
        after = CpuSnapshot.take(worker.pid, sandbox.pid, cluster.postmaster_pid)
        user_after, system_after = user_system_s(worker.pid)
        stop_sampling.set()
        await sampler
        delivery = await read_delivery(database, set(run.warmup_photo_of_ticket))
        if arguments.backlog:  # from the worker's start, not from the first filing
            delivery.first_created = started_wall
        delivery.cpu = after.used_since(before)
        delivery.cpu_user_s = user_after - user_before
        delivery.cpu_system_s = system_after - system_before
        delivery.drain_wall_s = drain_wall
        delivery.rss_start_mb = rss_start
        delivery.rss_peak_sampled_mb = max(rss, default=0.0)
        delivery.hwm_mb = proc_status_mb(worker.pid, "VmHWM")
        return run, delivery
    finally:
        stop_sampling.set()
        await database.dispose()


async def wait_for_outbox(
    database: Any, worker: Child, sandbox: Child, within_s: float, *, progress: bool = False
) -> None:
    """Poll until the outbox has no pending row; fail after `within_s` seconds."""
    give_up = time.perf_counter() + within_s
    next_progress = time.perf_counter() + PROGRESS_S
    while True:
        states = await outbox_states(database)
        if states.get("pending", 0) == 0:
            return
        worker.check_alive()
        sandbox.check_alive()
        now = time.perf_counter()
        if now > give_up:
            raise BenchError(
                f"the outbox still had {states['pending']} pending filings "
                f"{within_s:.0f} s after the last one was filed ({dict(states)})"
            )
        if progress and now >= next_progress:
            print(f"  … {dict(states)}", flush=True)
            next_progress = now + PROGRESS_S
        await asyncio.sleep(POLL_S)


async def outbox_states(database: Any) -> Counter[str]:
    from sqlalchemy import func, select

    from bot.storage.models import OutboxEntry

    async with database.transaction() as session:
        rows = await session.execute(
            select(OutboxEntry.state, func.count()).group_by(OutboxEntry.state)
        )
        return Counter({state: count for state, count in rows})


async def read_delivery(database: Any, untimed_tickets: set[str]) -> Delivery:
    from sqlalchemy import select

    from bot.storage.models import Filing, OutboxEntry

    async with database.transaction() as session:
        rows = (
            await session.execute(
                select(
                    OutboxEntry.state,
                    OutboxEntry.created_at,
                    OutboxEntry.delivered_at,
                    OutboxEntry.attempts,
                    OutboxEntry.last_error,
                    Filing.id,
                    Filing.ticket,
                    Filing.registry_ticket,
                ).join(Filing, Filing.id == OutboxEntry.filing_id)
            )
        ).all()
    states: Counter[str] = Counter()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    created, delivered = [], []
    registry_ticket_of, id_of_ticket = {}, {}
    retried = 0
    for state, created_at, delivered_at, attempts, last_error, filing_id, ticket, reg in rows:
        registry_ticket_of[filing_id] = reg
        id_of_ticket[ticket] = filing_id
        if ticket in untimed_tickets:
            continue
        states[state] += 1
        created.append(created_at.timestamp())
        if delivered_at is not None:
            delivered.append(delivered_at.timestamp())
            latencies.append((delivered_at - created_at).total_seconds())
        if attempts > 1:
            retried += 1
        if last_error:
            errors[last_error] += 1
    return Delivery(
        states=states,
        latencies_s=latencies,
        first_created=min(created, default=None),
        last_delivered=max(delivered, default=None),
        retried=retried,
        last_errors=errors,
        registry_ticket_of=registry_ticket_of,
        id_of_ticket=id_of_ticket,
    )


async def sandbox_queue(registry_url: str) -> list[dict[str, Any]]:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=120)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(f"{registry_url}/sandbox/queue") as response,
    ):
        if response.status != 200:
            raise BenchError(f"/sandbox/queue answered HTTP {response.status}")
        document = await response.json()
    items: list[dict[str, Any]] = document["items"]
    return items


def check_arrival(items: Sequence[dict[str, Any]], run: FilingRun, delivery: Delivery) -> Arrival:
    expected_photo = {
        delivery.id_of_ticket[ticket]: sha
        for ticket, sha in run.all_photos_of_ticket.items()
        if ticket in delivery.id_of_ticket
    }
    seen: set[str] = set()
    unknown = replayed = photo_mismatches = ticket_mismatches = 0
    for item in items:
        submission_id = item["submission_id"]
        seen.add(submission_id)
        if submission_id not in expected_photo:
            unknown += 1
            continue
        if item.get("received_count", 1) > 1:
            replayed += 1
        hashes = [photo["sha256"] for photo in item.get("photos", [])]
        if hashes != [expected_photo[submission_id]]:
            photo_mismatches += 1
        if delivery.registry_ticket_of.get(submission_id) != item["ticket"]:
            ticket_mismatches += 1
    return Arrival(
        items=len(items),
        distinct=len(seen),
        unknown=unknown,
        missing=len(set(expected_photo) - seen),
        replayed=replayed,
        photo_mismatches=photo_mismatches,
        ticket_mismatches=ticket_mismatches,
    )


def worker_log_counts(worker: Child) -> tuple[int, int]:
    text = worker.log.read_text(errors="replace")
    return text.count(" WARNING "), text.count(" ERROR ")


# --- the floor ------------------------------------------------------------------------------


async def run_floor(
    registry_url: str,
    submissions: int,
    concurrency: int,
    warmup: int,
    people: Sequence[tuple[str, str]],
    photos: Sequence[Photo],
    sandbox: Child,
    deadline: Deadline,
) -> Floor:
    """`submissions` multipart submissions straight to the sandbox, `concurrency` at once."""
    from bot.app import utc_now
    from bot.crypto import KeyRing
    from bot.filings import submission_document
    from registry_client import RegistryClient, RegistryError
    from registry_client.models import PhotoPart

    keys = KeyRing.from_secret(SECRET_KEY)
    floor = Floor(submissions=submissions, concurrency=concurrency, warmup=warmup)

    async with RegistryClient(registry_url, SANDBOX_TOKEN) as registry:

        async def one(number: int, timed: bool = True) -> None:
            nik, name = people[number % len(people)]
            photo = photos[number % len(photos)]
            filer = filer_of(1_000_000 + number)
            submission_id = str(uuid.uuid4())
            filer_ref = keys.keyed_hash("registry-filer", f"{filer.channel}:{filer.address_hash}")
            document = submission_document(
                submission_id, objection_about(nik, name, photo.sha256), filer, filer_ref, utc_now()
            )
            part = PhotoPart(sha256=photo.sha256, role="house_front", content=photo.content)
            sent = time.perf_counter()
            try:
                await registry.submit(submission_id, document, (part,), timeout=10.0)
            except RegistryError as problem:
                floor.errors[type(problem).__name__] += 1
                return
            if timed:
                floor.latencies_s.append(time.perf_counter() - sent)

        async def lane(numbers: Iterator[int], timed: bool) -> None:
            for number in numbers:  # one shared iterator: the next free lane takes it
                await one(number, timed)

        untimed = iter(range(warmup))
        await asyncio.gather(*(lane(untimed, False) for _ in range(concurrency)))
        numbers = iter(range(warmup, warmup + submissions))
        before = CpuSnapshot.take(os.getpid(), sandbox.pid, None)
        started = time.perf_counter()
        async with asyncio.timeout(max(1.0, deadline.remaining() - 30)):
            await asyncio.gather(*(lane(numbers, True) for _ in range(concurrency)))
        floor.wall_s = time.perf_counter() - started
        used = CpuSnapshot.take(os.getpid(), sandbox.pid, None).used_since(before)
        # The "worker" here is this process itself: report it once, as the client.
        floor.cpu = {
            "client (bench)": used["bench (filer)"],
            "sandbox": used["sandbox"],
            "other processes": used["other processes"],
        }
    items = await sandbox_queue(registry_url)
    floor.queued = len(items)
    floor.queued_distinct = len({item["submission_id"] for item in items})
    return floor


# --- figures --------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def percentiles(values: Sequence[float]) -> tuple[float, float, float, float]:
    ordered = sorted(values)
    top = ordered[-1] if ordered else float("nan")
    return quantile(ordered, 0.5), quantile(ordered, 0.95), quantile(ordered, 0.99), top


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(
    arguments: argparse.Namespace,
    photos: Sequence[Photo],
    run: FilingRun,
    delivery: Delivery,
    arrival: Arrival,
    floor: Floor | None,
) -> str:
    sizes = sorted(len(photo.content) for photo in photos)
    cores = os.cpu_count() or 1
    backlog = arguments.backlog
    how = "all filed first, then the worker" if backlog else f"at {run.rate:g}/s (open loop)"
    lines = [
        f"== outbox on PostgreSQL: {run.offered} filings offered {how}, 1 photo each ==",
        f"  warm-up             {len(run.warmup_photo_of_ticket)} untimed filings, filed and "
        "delivered before t0 (left out of every figure below)",
        f"  photos              {len(photos)} JPEGs {PHOTO_SIZE[0]}×{PHOTO_SIZE[1]}, "
        f"{sizes[0] // 1024}–{sizes[-1] // 1024} KB (mean {sum(sizes) // len(sizes) // 1024} KB)",
    ]
    lag50, lag95, _, lag_max = percentiles(run.start_lag_s)
    tx50, tx95, tx99, tx_max = percentiles(run.transaction_s)
    filed_rate = run.accepted / run.wall_s if run.wall_s else float("nan")
    refused = sum(run.refused.values())
    failed = sum(run.errors.values())
    lines += [
        "  filing (this process: FilingService.submit in database.transaction(), "
        f"at most {FILER_IN_FLIGHT} at once)",
        f"    filed             {run.accepted} of {run.offered} in {run.wall_s:.2f} s = "
        f"{filed_rate:.1f}/s (refused {refused}{_kinds(run.refused)}, "
        f"errors {failed}{_kinds(run.errors)})",
    ]
    if not backlog:
        lines.append(
            f"    start lag         p50 {ms(lag50)}, p95 {ms(lag95)}, max {ms(lag_max)} behind "
            "schedule: "
            + (
                "the filer kept to its schedule"
                if lag95 <= BEHIND_TOLERANCE_S
                else f"THE FILER FELL BEHIND: it offered {filed_rate:.0f}/s, not {run.rate:g}/s"
            )
        )
    lines.append(
        f"    transaction       p50 {ms(tx50)}, p95 {ms(tx95)}, p99 {ms(tx99)}, max {ms(tx_max)}"
    )
    states = delivery.states
    delivered = states.get("delivered", 0)
    span = (
        delivery.last_delivered - delivery.first_created
        if delivery.last_delivered is not None and delivery.first_created is not None
        else float("nan")
    )
    rate = delivered / span if span and span > 0 else float("nan")
    p50, p95, p99, top = percentiles(delivery.latencies_s)
    worker_cpu = delivery.cpu.get("worker", 0.0)
    per_filing = worker_cpu / delivered if delivered else float("nan")
    lines += [
        "  delivery (bansos-bot outbox, its own process)",
        f"    delivered         {delivered}   refused {states.get('refused', 0)}   "
        f"dead letters {states.get('dead', 0)}   pending {states.get('pending', 0)}   "
        f"retried (attempts > 1) {delivery.retried}"
        + (f"   last errors {dict(delivery.last_errors)}" if delivery.last_errors else ""),
        f"    worker log        {delivery.warnings_logged} WARNING, "
        f"{delivery.errors_logged} ERROR lines",
        f"    throughput        {rate:.1f} filings/s delivered "
        f"({'worker start' if backlog else 'first filing'} → last delivered_at: {span:.2f} s)"
        f"   target ≥ {TARGET_RATE:.0f}/s: {verdict(rate >= TARGET_RATE)}",
        f"    filing → registry p50 {ms(p50)}, p95 {ms(p95)}, p99 {ms(p99)}, max {ms(top)} "
        + (
            "(delivered_at − created_at; backlog: mostly the wait for the worker)"
            if backlog
            else f"(delivered_at − created_at)   target p95 < {TARGET_P95_S:.0f} s: "
            f"{verdict(p95 < TARGET_P95_S)}"
        ),
        f"    worker memory     peak {delivery.hwm_mb:.1f} MB (VmHWM); VmRSS sampled every "
        f"{RSS_SAMPLE_S:g} s: {delivery.rss_start_mb:.1f} MB before filing, "
        f"max {delivery.rss_peak_sampled_mb:.1f} MB",
        f"    worker CPU        {worker_cpu:.1f} s = {per_filing * 1000:.2f} ms per filing "
        f"(user {delivery.cpu_user_s:.1f} s, system {delivery.cpu_system_s:.1f} s; one "
        f"process tops out near {1 / per_filing:.0f} filings/s)"
        if delivered and worker_cpu
        else "    worker CPU        (not measured)",
        f"    CPU from {'worker start' if backlog else 'first filing'} to drained "
        f"({delivery.drain_wall_s:.1f} s; 100% = one core of {cores}):",
        "      "
        + ", ".join(
            f"{name} {seconds:.1f} s ({seconds / delivery.drain_wall_s:.0%})"
            for name, seconds in delivery.cpu.items()
        ),
    ]
    filed = len(run.all_photos_of_ticket)
    arrived_ok = arrival.ok(filed)
    lines += [
        "  at the registry (/sandbox/queue)",
        f"    items {arrival.items} (filed {filed}, warm-up included), distinct submission ids "
        f"{arrival.distinct}, not filed by us {arrival.unknown}, missing {arrival.missing}, "
        f"photo hash mismatches {arrival.photo_mismatches}, registry ticket mismatches "
        f"{arrival.ticket_mismatches}, received more than once {arrival.replayed} "
        f"(replays answered with the first ticket)",
        "    every filing arrived exactly once with its photo: " + ("yes" if arrived_ok else "NO"),
    ]
    if floor is not None:
        f50, f95, f99, f_max = percentiles(floor.latencies_s)
        sandbox_cpu = floor.cpu.get("sandbox", 0.0)
        done = len(floor.latencies_s)
        lines += [
            f"  floor: RegistryClient.submit straight to a fresh sandbox, {floor.concurrency} "
            "at once, no database, no outbox",
            f"    sent              {done} of {floor.submissions} in {floor.wall_s:.2f} s = "
            f"{floor.rate:.1f}/s   errors {sum(floor.errors.values())}{_kinds(floor.errors)}   "
            f"queued {floor.queued} ({floor.queued_distinct} distinct, {floor.warmup} of "
            "them untimed warm-up)",
            f"    per request       p50 {ms(f50)}, p95 {ms(f95)}, p99 {ms(f99)}, max {ms(f_max)}",
            "    CPU               "
            + ", ".join(
                f"{name} {seconds:.1f} s ({seconds / floor.wall_s:.0%})"
                for name, seconds in floor.cpu.items()
            )
            + (f"; sandbox {sandbox_cpu / done * 1000:.2f} ms per submission" if done else ""),
            "  outbox / floor",
            f"    throughput        {rate / floor.rate:.2f}   ({rate:.1f} / {floor.rate:.1f} "
            "filings/s)",
            f"    p50               {p50 / f50:.1f}×   ({ms(p50)} filing → registry / "
            f"{ms(f50)} per request)",
            f"    p95               {p95 / f95:.1f}×   ({ms(p95)} / {ms(f95)})",
        ]
    return "\n".join(lines)


def _kinds(counter: Counter[str]) -> str:
    return f": {dict(counter)}" if counter else ""


# --- main -----------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the outbox on PostgreSQL at a fixed arrival rate of filings.",
    )
    parser.add_argument("--filings", type=int, default=5000, help="filings to file (5000)")
    parser.add_argument("--rate", type=float, default=250.0, help="arrivals per second (250)")
    parser.add_argument("--households", type=int, default=20_000, help="sandbox population")
    parser.add_argument("--photos", type=int, default=20, help="distinct photos (20)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=100,
        help="untimed filings, filed and delivered before the timed ones (100)",
    )
    parser.add_argument(
        "--floor-concurrency",
        type=int,
        default=WORKER_CONCURRENCY,
        help=f"submissions in flight in the floor pass ({WORKER_CONCURRENCY}, as the worker)",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the floor pass")
    parser.add_argument(
        "--backlog",
        action="store_true",
        help="file everything first, then start the worker and time the drain (its ceiling)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the outbox after the last filing (300)",
    )
    parser.add_argument(
        "--deadline", type=float, default=600.0, help="hard limit of the whole run, s (600)"
    )
    parser.add_argument(
        "--worker-log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="the worker's LOG_LEVEL (INFO, as `bansos-bot outbox` has it)",
    )
    parser.add_argument(
        "--worker-script",
        type=Path,
        help="run the worker as `python FILE outbox` instead of `bansos-bot outbox`",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the worker under pyinstrument (slower: figures are not the timed ones)",
    )
    parser.add_argument(
        "--profile-tree-lines", type=int, default=80, help="call-tree lines to print (80)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument("--worker-under-profiler", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.filings < 1 or arguments.rate <= 0 or arguments.households < 1:
        parser.error("--filings, --rate and --households must be positive")
    if arguments.warmup < 0:
        parser.error("--warmup must not be negative")
    if arguments.photos < 1 or arguments.floor_concurrency < 1:
        parser.error("--photos and --floor-concurrency must be at least 1")
    if arguments.filings / arguments.rate > arguments.deadline / 3:
        parser.error("filing alone would take more than a third of --deadline")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.worker_under_profiler is not None:
        return worker_under_profiler(arguments.worker_under_profiler, arguments.worker_script)

    deadline = Deadline(arguments.deadline)

    def hard_stop(_signum: int, _frame: Any) -> None:
        raise HardDeadline

    # Ctrl-C and SIGTERM unwind through the finally blocks, so every child is stopped; a
    # run stuck past its time limit (plus a grace period) is interrupted the same way.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGALRM, hard_stop)
    signal.alarm(int(arguments.deadline) + 30)

    workdir = Path(tempfile.mkdtemp(prefix="bansos-bench-outbox-"))
    cluster: Cluster | None = None
    sandbox: Child | None = None
    worker: Child | None = None
    succeeded = False
    try:
        print("starting a throwaway PostgreSQL cluster, migrating…", flush=True)
        cluster = start_cluster(DATABASE_NAME)
        print(
            f"sandbox registry: {arguments.households} households, seed {SANDBOX_SEED}…", flush=True
        )
        sandbox, sandbox_url = start_sandbox(arguments.households, workdir, "outbox")
        people = asyncio.run(fetch_people(sandbox_url, min(arguments.filings, 5000)))

        from bot.blob_store import BlobStore

        blobs = BlobStore(workdir / "blobs")
        photos = [Photo(blobs.put(content), content) for content in make_photos(arguments.photos)]
        deadline.check("start-up")
        profile_out = workdir / "worker-profile" if arguments.profile else None
        database_url, registry_url = cluster.url, sandbox_url

        def launch_worker() -> Child:
            nonlocal worker
            worker = start_worker(arguments, database_url, registry_url, workdir, profile_out)
            return worker

        how = (
            "all of them first, then the worker"
            if arguments.backlog
            else f"at {arguments.rate:g}/s (≈ {arguments.filings / arguments.rate:.0f} s)"
        )
        print(
            f"{len(people)} distinct subjects, {len(photos)} photos; filing "
            f"{arguments.filings} objections {how}, then waiting for the outbox…",
            flush=True,
        )
        run, delivery = asyncio.run(
            file_and_drain(arguments, cluster, people, photos, launch_worker, sandbox, deadline)
        )
        items = asyncio.run(sandbox_queue(sandbox_url))
        arrival = check_arrival(items, run, delivery)
        assert worker is not None
        worker.check_alive()
        worker.stop(timeout=120 if arguments.profile else 30)
        delivery.warnings_logged, delivery.errors_logged = worker_log_counts(worker)
        sandbox.stop()

        floor = None
        if not arguments.no_floor:
            deadline.check("the outbox pass")
            print(
                f"floor: {run.accepted} submissions straight to a fresh sandbox, "
                f"{arguments.floor_concurrency} at once…",
                flush=True,
            )
            sandbox, sandbox_url = start_sandbox(arguments.households, workdir, "floor")
            floor = asyncio.run(
                run_floor(
                    sandbox_url,
                    run.accepted,
                    arguments.floor_concurrency,
                    arguments.warmup,
                    people,
                    photos,
                    sandbox,
                    deadline,
                )
            )
        print()
        print(report(arguments, photos, run, delivery, arrival, floor), flush=True)
        if profile_out is not None:
            flat = profile_out.with_suffix(".flat.txt")
            tree = profile_out.with_suffix(".tree.txt")
            if not flat.exists():
                raise BenchError("the profiled worker wrote no profile:\n" + worker.tail())
            print("\n-- profile of the worker (pyinstrument, whole run incl. start-up) --")
            print(flat.read_text())
            print("-- top of the call tree --")
            print("\n".join(tree.read_text().splitlines()[: arguments.profile_tree_lines]))
        succeeded = arrival.ok(len(run.all_photos_of_ticket)) and not run.errors
        if floor is not None:
            expected = floor.warmup + run.accepted
            succeeded = succeeded and not floor.errors and floor.queued == expected
    except BenchError as problem:
        print(f"bench: {problem}", file=sys.stderr)
        return 1
    except HardDeadline:
        print(f"bench: hard time limit ({arguments.deadline:.0f} s + 30 s) passed", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.alarm(0)
        for child in (worker, sandbox):
            if child is not None:
                with contextlib.suppress(Exception):
                    child.stop()
        if cluster is not None:
            stop_cluster(cluster)
        if arguments.keep:
            print(f"work folder kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if succeeded else 1


if __name__ == "__main__":
    raise SystemExit(main())
