#!/usr/bin/env python
"""Benchmark: the quarterly notice run on PostgreSQL: ingest a big change feed, then send.

Not part of the test run. Processes, all on 127.0.0.1 (the machine it was written on has
2 cores):

* a throwaway PostgreSQL cluster (tests/support/postgres.py, fsync off) with a database of
  its own, migrated with bot.storage.migrate.upgrade_to_head;
* the sandbox registry (`bansos-bot sandbox-registry --seed 42`), its own process, advanced
  by one quarter with `{"changes": 1000000}`;
* a minimal Telegram Bot API server (`--child telegram`, aiohttp): `getMe` and
  `sendMessage` answered the way Telegram does; it keeps receive times and chat ids only;
* the measured runs, each in a process of its own so its peak memory is its own:
  - the floor (`--child floor`): RegistryClient.quarter_changes over the whole feed,
    page by page, and nothing else;
  - ingest (`--child ingest`): build_services, Services.notice_run, NoticeRun.ingest;
  - send (`--child send`): as `bansos-bot notices run` builds it (push_ports: a PTB Bot
    and TelegramOutbound), NoticeRun.send, at NOTICE_RATE (and NOTICE_PAID_BROADCAST);
* the benchmark itself: setup (subscriptions), slicing the pending notices, figures.

Setup: 100,000 subscriptions, 90 % to NIKs of the quarter's feed (spread evenly over it)
and 10 % to NIKs the feed does not hold, each from its own Telegram chat. The first 1,000
go through SubscriptionService.subscribe in one transaction; the rest are the same rows
written by a bulk INSERT (KeyRing.nik_hash, the address sealed with
subscription_seal_context, the NIK with nik_seal_context), checked on a sample; then
ANALYZE (without statistics the planner joins each page by a sequential scan).

Send passes run on a slice of the quarter's pending notices: before a pass every pending
notice but the N lowest ids is set to the state 'parked' (which no query of the bot
reads), and set back to 'pending' afterwards, so the pass is NoticeRun.send on the real
quarter with exactly N notices due.

    .venv/bin/python -m bench.notices [--changes 1000000] [--subscriptions 100000]
                                      [--households 20000] [--profile] [--patch FILE]

--profile runs the ingest and send processes under pyinstrument (their figures are then
slower); --patch FILE runs FILE in the ingest and send processes before they start (a
monkeypatch of bot/ to try a change).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import resource
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    wait_until_ready,
)

SECRET_KEY = "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-0003"
SANDBOX_TOKEN = "sandbox-token"
SANDBOX_SEED = 42
DATABASE_NAME = "bansos_notices_bench"
TELEGRAM_TOKEN = "5000000001:AAFakeTelegram-token_for_bench_only00"
FIRST_CHAT_ID = 700_000_000
VIA_SUBSCRIBE = 1000  # subscriptions written by SubscriptionService.subscribe itself
INSERT_CHUNK = 5000
PARKED = "parked"  # a notice state no query of the bot reads: out of this send pass
TARGET_INGEST_RATIO = 2.0
TARGET_PEAK_MB = 300.0
TARGET_RATE_RATIO = 0.95
SEND_LIMIT_FACTOR = 2.0  # a send pass is stopped after 2 × its planned time + 30 s
SEND_LIMIT_EXTRA_S = 30.0
MB = 1024 * 1024


class HardDeadline(KeyboardInterrupt):
    """The run's time limit passed (a KeyboardInterrupt, so it unwinds like Ctrl-C)."""


# --- /proc of this process -------------------------------------------------------------------


def own_status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024 / MB
    return 0.0


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- child: a minimal Telegram Bot API server (--child telegram) -----------------------------


def serve_telegram(port: int) -> int:
    """getMe and sendMessage as Telegram answers them; keeps receive times and chat ids."""
    import array

    from aiohttp import web

    bot_id = int(TELEGRAM_TOKEN.split(":")[0])
    me = {"id": bot_id, "is_bot": True, "first_name": "Bench", "username": "bench_bot"}
    state: dict[str, Any] = {}

    def reset() -> None:
        state.update(times=array.array("d"), chats=set(), paid=0, next_id=0)

    reset()

    def error(code: int, description: str) -> web.Response:
        return web.json_response({"ok": False, "error_code": code, "description": description})

    async def api(request: web.Request) -> web.Response:
        method = request.match_info["method"].lower()  # Telegram ignores the case
        if method == "sendmessage":
            received = time.perf_counter()
            form = await request.post()
            try:
                chat_id = int(str(form["chat_id"]))
            except (KeyError, ValueError):
                return error(400, "Bad Request: chat not found")
            text = str(form.get("text") or "")
            if not text.strip():
                return error(400, "Bad Request: message text is empty")
            state["times"].append(received)
            state["chats"].add(chat_id)
            state["paid"] += form.get("allow_paid_broadcast") == "true"
            state["next_id"] += 1
            message: dict[str, Any] = {
                "message_id": state["next_id"],
                "from": me,
                "chat": {"id": chat_id, "type": "private", "first_name": "Warga"},
                "date": int(time.time()),
                "text": text,
            }
            markup = form.get("reply_markup")
            if markup:
                message["reply_markup"] = json.loads(str(markup))
            return web.json_response({"ok": True, "result": message})
        if method == "getme":
            return web.json_response({"ok": True, "result": me})
        if method in ("close", "logout", "deletewebhook"):
            return web.json_response({"ok": True, "result": True})
        return error(404, "Not Found: method not found")

    async def stats(_: web.Request) -> web.Response:
        times = state["times"]
        gaps = sorted(b - a for a, b in itertools.pairwise(times))
        return web.json_response(
            {
                "count": len(times),
                "span_s": times[-1] - times[0] if len(times) > 1 else 0.0,
                "gap_p50_s": quantile(gaps, 0.5) if gaps else None,
                "gap_p99_s": quantile(gaps, 0.99) if gaps else None,
                "gap_max_s": gaps[-1] if gaps else None,
                "distinct_chats": len(state["chats"]),
                "paid": state["paid"],
            }
        )

    async def do_reset(_: web.Request) -> web.Response:
        reset()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/bench/stats", stats)
    app.router.add_post("/bench/reset", do_reset)
    app.router.add_route("*", "/{bot}/{method}", api)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
    return 0


# --- children: floor, ingest, send -----------------------------------------------------------


async def child_floor(quarter: str) -> dict[str, Any]:
    from bot.notice_run import PAGE_SIZE
    from bot.settings import load_settings
    from registry_client import RegistryClient

    settings = load_settings()
    assert settings.registry_url is not None
    client = RegistryClient(settings.registry_url, settings.registry_token)
    try:
        cpu, started = own_cpu_s(), time.perf_counter()
        cursor: str | None = None
        changes = pages = 0
        while True:
            page = await client.quarter_changes(quarter, cursor, limit=PAGE_SIZE)
            changes += len(page.items)
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        seconds = time.perf_counter() - started
        return {
            "seconds": seconds,
            "changes": changes,
            "pages": pages,
            "cpu_s": own_cpu_s() - cpu,
            "hwm_mb": own_status_mb("VmHWM"),
        }
    finally:
        await client.close()


async def child_ingest(quarter: str) -> dict[str, Any]:
    from bot.app import build_services
    from bot.notice_run import NoProgress, RunSummary
    from bot.settings import load_settings

    settings = load_settings()
    assert settings.registry_url is not None
    services = await build_services(settings, registry_url=settings.registry_url)
    try:
        run = services.notice_run({})
        summary = RunSummary(quarter)
        rss_before, hwm_before = own_status_mb("VmRSS"), own_status_mb("VmHWM")
        cpu, started = own_cpu_s(), time.perf_counter()
        await run.ingest(quarter, summary, NoProgress())
        seconds = time.perf_counter() - started
        return {
            "seconds": seconds,
            "changes": summary.changes_read,
            "matched": summary.matched,
            "cpu_s": own_cpu_s() - cpu,
            "rss_before_mb": rss_before,
            "hwm_before_mb": hwm_before,
            "hwm_mb": own_status_mb("VmHWM"),
        }
    finally:
        await services.close()


async def child_send(quarter: str) -> dict[str, Any]:
    from bot.app import build_services
    from bot.notice_run import NoProgress, RunSummary
    from bot.notices_cli import push_ports
    from bot.settings import load_settings

    settings = load_settings()
    assert settings.registry_url is not None
    services = await build_services(settings, registry_url=settings.registry_url)
    try:
        async with push_ports(settings) as ports:  # as `bansos-bot notices run` does
            run = services.notice_run(ports)
            summary = RunSummary(quarter)
            cpu, started = own_cpu_s(), time.perf_counter()
            await run.send(quarter, summary, NoProgress())
            seconds = time.perf_counter() - started
            return {
                "seconds": seconds,
                "sent": summary.sent,
                "held": summary.held,
                "retired": summary.retired,
                "failed": summary.failed,
                "window": run.window,
                "cpu_s": own_cpu_s() - cpu,
                "hwm_mb": own_status_mb("VmHWM"),
            }
    finally:
        await services.close()


CHILDREN: dict[str, Callable[[str], Any]] = {
    "floor": child_floor,
    "ingest": child_ingest,
    "send": child_send,
}


def run_child(
    kind: str, quarter: str, result: Path, profile: Path | None, patch: Path | None
) -> int:
    if patch is not None and kind != "floor":
        runpy.run_path(str(patch), run_name="bench_patch")
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler

        # async_mode "disabled": sample the whole event-loop thread, idle time included.
        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
    # SIGTERM (the benchmark stopping a pass at its limit) unwinds like Ctrl-C, so the
    # profile is still written.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        figures = asyncio.run(CHILDREN[kind](quarter))
        figures["cpu_total_s"] = own_cpu_s()  # start-up included
    finally:
        if profiler is not None and profile is not None:
            session = profiler.stop()
            profile.with_suffix(".flat.txt").write_text(flat_profile(session))
            profile.with_suffix(".tree.txt").write_text(
                profiler.output_text(unicode=True, color=False, show_all=False)
            )
    result.write_text(json.dumps(figures))
    return 0


# --- the sandbox and its feed ----------------------------------------------------------------


def start_sandbox(households: int, workdir: Path) -> tuple[Child, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sandbox = Child.start(
        "sandbox registry",
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
        workdir / "sandbox.log",
    )
    wait_until_ready(sandbox, f"{url}/sandbox/people?limit=1")
    return sandbox, url


def post_json(url: str, body: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def get_json(url: str, timeout: float = 30.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


async def feed_niks(
    registry_url: str, quarter: str, total: int, wanted: int
) -> tuple[list[str], set[str]]:
    """`wanted` NIKs spread evenly over the feed, and every NIK of the feed (setup only)."""
    from registry_client import RegistryClient

    picks = {j * total // wanted for j in range(wanted)}
    client = RegistryClient(registry_url, SANDBOX_TOKEN)
    chosen: list[str] = []
    every: set[str] = set()
    try:
        cursor: str | None = None
        index = 0
        while True:
            page = await client.quarter_changes(quarter, cursor, limit=1000)
            for change in page.items:
                every.add(change.nik)
                if index in picks:
                    chosen.append(change.nik)
                index += 1
            cursor = page.next_cursor
            if cursor is None:
                break
    finally:
        await client.close()
    if index != total:
        raise BenchError(f"the feed holds {index} changes, the sandbox said {total}")
    return list(dict.fromkeys(chosen)), every


# --- setup: subscriptions --------------------------------------------------------------------


def chosen_niks(in_feed: list[str], every: set[str], out_count: int, seed: int = 7) -> list[str]:
    """The feed's NIKs and `out_count` NIKs it does not hold, shuffled together."""
    rng = random.Random(seed)
    outside: set[str] = set()
    while len(outside) < out_count:
        nik = str(rng.randrange(10**15, 10**16))  # 16 digits
        if nik not in every:
            outside.add(nik)
    niks = in_feed + sorted(outside)
    rng.shuffle(niks)
    return niks


async def create_subscriptions(url: str, niks: Sequence[str]) -> dict[str, float]:
    """One subscription per NIK, each from its own Telegram chat (FIRST_CHAT_ID + i)."""
    from sqlalchemy import insert

    from bot.app import utc_now
    from bot.crypto import KeyRing
    from bot.filings import Filer
    from bot.storage.database import open_database
    from bot.storage.models import Subscription
    from bot.storage.notice_repository import ACTIVE
    from bot.subscription_service import (
        SubscriptionService,
        nik_seal_context,
        subscription_seal_context,
    )
    from bot.subscriptions import Subscribed
    from handlers.telegram import CHANNEL

    keys = KeyRing.from_secret(SECRET_KEY)
    service = SubscriptionService(keys, per_address=5, clock=utc_now)
    database = open_database(url)
    figures: dict[str, float] = {}
    try:
        # The first ones through the service itself, in one transaction.
        head = min(VIA_SUBSCRIBE, len(niks))
        started = time.perf_counter()
        async with database.transaction() as session:
            for i in range(head):
                address = str(FIRST_CHAT_ID + i)
                who = Filer(CHANNEL, address, keys.address_hash(CHANNEL, address))
                outcome = await service.subscribe(session, who, niks[i])
                if outcome != Subscribed(already=False):
                    raise BenchError(f"subscribe() answered {outcome!r}")
        figures["via_subscribe_s"] = time.perf_counter() - started

        # The rest: the same rows, bulk-inserted.
        started = time.perf_counter()
        nik_hash = keys.nik_hasher()
        now = utc_now()
        table = Subscription.__table__
        for first in range(head, len(niks), INSERT_CHUNK):
            rows = []
            for i in range(first, min(first + INSERT_CHUNK, len(niks))):
                address = str(FIRST_CHAT_ID + i)
                address_hash = keys.address_hash(CHANNEL, address)
                rows.append(
                    {
                        "channel": CHANNEL,
                        "address_hash": address_hash,
                        "sealed_address": keys.seal(
                            address.encode(),
                            context=subscription_seal_context(CHANNEL, address_hash),
                        ),
                        "nik_hash": nik_hash(niks[i]),
                        "sealed_nik": keys.seal(
                            niks[i].encode(), context=nik_seal_context(CHANNEL, address_hash)
                        ),
                        "state": ACTIVE,
                        "created_at": now,
                        "retired_at": None,
                    }
                )
            async with database.transaction() as session:
                await session.execute(insert(Subscription), rows)
        figures["bulk_s"] = time.perf_counter() - started

        # Fresh statistics, as a database that gained its subscriptions over months has
        # (autovacuum analyzes a table after 10 % of it changed); without them the planner
        # guesses a few dozen rows for subscriptions.
        async with database.engine.begin() as connection:  # committed: kept
            await connection.exec_driver_sql("ANALYZE")

        # Both kinds of rows read back the way the bot reads them.
        async with database.transaction() as session:
            from sqlalchemy import func, select

            figures["count"] = (
                await session.execute(select(func.count()).select_from(table))
            ).scalar_one()
            probe = sorted(
                {0, head - 1, head, len(niks) // 2, len(niks) - 1} & set(range(len(niks)))
            )
            for i in probe:
                address = str(FIRST_CHAT_ID + i)
                address_hash = keys.address_hash(CHANNEL, address)
                row = (
                    await session.execute(
                        select(Subscription).where(
                            Subscription.channel == CHANNEL,
                            Subscription.address_hash == address_hash,
                        )
                    )
                ).scalar_one()
                sealed_address = keys.unseal(
                    row.sealed_address, context=subscription_seal_context(CHANNEL, address_hash)
                )
                sealed_nik = keys.unseal(
                    row.sealed_nik, context=nik_seal_context(CHANNEL, address_hash)
                )
                if (
                    row.nik_hash != keys.nik_hash(niks[i])
                    or sealed_address.decode() != address
                    or sealed_nik.decode() != niks[i]
                    or row.state != ACTIVE
                ):
                    raise BenchError(f"subscription {i} does not read back as written")
            figures["verified"] = len(probe)
    finally:
        await database.dispose()
    return figures


# --- notices: counts and slices --------------------------------------------------------------


async def notice_counts(url: str, quarter: str) -> dict[str, int]:
    from bot.storage.database import open_database
    from bot.storage.notice_repository import NoticeRepository

    database = open_database(url)
    try:
        async with database.transaction() as session:
            return await NoticeRepository(session).counts(quarter)
    finally:
        await database.dispose()


async def park_all_but(url: str, quarter: str, keep: int) -> int:
    """Leave the `keep` lowest-id pending notices pending; park the others."""
    from sqlalchemy import text

    from bot.storage.database import open_database

    database = open_database(url)
    try:
        async with database.transaction() as session:
            result = await session.execute(
                text(
                    "UPDATE notices SET state = :parked WHERE quarter = :quarter "
                    "AND state = 'pending' AND id NOT IN (SELECT id FROM notices "
                    "WHERE quarter = :quarter AND state = 'pending' ORDER BY id LIMIT :keep)"
                ),
                {"parked": PARKED, "quarter": quarter, "keep": keep},
            )
            return int(result.rowcount)  # type: ignore[attr-defined]
    finally:
        await database.dispose()


async def unpark(url: str, quarter: str) -> int:
    from sqlalchemy import text

    from bot.storage.database import open_database

    database = open_database(url)
    try:
        async with database.transaction() as session:
            result = await session.execute(
                text("UPDATE notices SET state = 'pending' WHERE quarter = :q AND state = :p"),
                {"q": quarter, "p": PARKED},
            )
            return int(result.rowcount)  # type: ignore[attr-defined]
    finally:
        await database.dispose()


# --- running a child and metering it ---------------------------------------------------------


@dataclass
class Meter:
    """CPU seconds of the sandbox, PostgreSQL, the Telegram server and the machine."""

    sandbox_pid: int
    postmaster_pid: int | None
    telegram_pid: int | None = None

    def sample(self) -> dict[str, float]:
        busy, _ = machine_busy_s()
        return {
            "sandbox": process_cpu_s(self.sandbox_pid),
            "postgres": cluster_cpu_s(self.postmaster_pid) if self.postmaster_pid else 0.0,
            "telegram": process_cpu_s(self.telegram_pid) if self.telegram_pid else 0.0,
            "bench": own_cpu_s(),
            "machine": busy,
        }

    @staticmethod
    def used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {key: after[key] - before[key] for key in before}


@dataclass
class Measured:
    figures: dict[str, Any] | None  # None: stopped at its time limit
    used: dict[str, float]  # CPU seconds by process while it ran
    profile: Path | None
    wall_s: float


def run_measured(
    kind: str,
    quarter: str,
    env: dict[str, str],
    workdir: Path,
    tag: str,
    limit_s: float,
    meter: Meter,
    arguments: argparse.Namespace,
    *,
    stop_at_limit: bool = False,
) -> Measured:
    """Run `--child kind` to its end (or, with stop_at_limit, stop it after limit_s): its
    figures, the CPU every process used meanwhile, its profile."""
    result = workdir / f"{tag}.json"
    command = [sys.executable, "-m", "bench.notices", "--child", kind, "--quarter", quarter]
    command += ["--result", str(result)]
    profile = workdir / f"{tag}.profile" if arguments.profile and kind != "floor" else None
    if profile is not None:
        command += ["--profile-out", str(profile)]
    if arguments.patch is not None and kind != "floor":
        command += ["--patch", str(arguments.patch)]
    before = meter.sample()
    started = time.monotonic()
    child = Child.start(tag, command, env, workdir / f"{tag}.log")
    child_cpu = 0.0
    stopped = False
    try:
        while child.alive():
            child_cpu = process_cpu_s(child.pid) or child_cpu
            if time.monotonic() - started > limit_s:
                if not stop_at_limit:
                    raise BenchError(f"{tag} did not finish in {limit_s:.0f} s:\n{child.tail()}")
                stopped = True
                child.stop()
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(0.25)
    finally:
        child.stop()
    wall = time.monotonic() - started
    after = meter.sample()
    figures: dict[str, Any] | None = None
    if not stopped:
        if child.process.returncode != 0 or not result.exists():
            raise BenchError(
                f"{tag} exited with code {child.process.returncode}; last output:\n{child.tail()}"
            )
        figures = json.loads(result.read_text())
        child_cpu = float(figures["cpu_total_s"])
    used = Meter.used(before, after)
    used["child_total"] = child_cpu
    used["child"] = float(figures["cpu_s"]) if figures else child_cpu
    ours = sum(used[key] for key in ("sandbox", "postgres", "telegram", "bench", "child_total"))
    # Other processes: what the machine was busy with besides ours.
    used["other"] = max(0.0, used["machine"] - ours)
    return Measured(figures, used, profile, wall)


def cpu_line(used: dict[str, float], keys: Sequence[tuple[str, str]]) -> str:
    parts = [f"{label} {used[key]:.1f} s" for key, label in keys]
    return "  CPU: " + ", ".join(parts)


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def print_profile(profile: Path | None, tree_lines: int) -> None:
    if profile is None:
        return
    flat, tree = profile.with_suffix(".flat.txt"), profile.with_suffix(".tree.txt")
    if not flat.exists():
        print("  (no profile written)")
        return
    print(f"\n  -- profile ({profile.stem}, pyinstrument, 1 ms; figures above are slowed) --")
    print(flat.read_text())
    print("  -- top of the call tree --")
    print("\n".join(tree.read_text().splitlines()[:tree_lines]), flush=True)


# --- the send passes -------------------------------------------------------------------------


def send_pass(
    label: str,
    count: int,
    rate: float,
    paid: bool,
    quarter: str,
    base_env: dict[str, str],
    telegram_url: str,
    cluster: Cluster,
    workdir: Path,
    meter: Meter,
    arguments: argparse.Namespace,
) -> bool:
    parked = asyncio.run(park_all_but(cluster.url, quarter, count))
    before = asyncio.run(notice_counts(cluster.url, quarter))
    post_json(f"{telegram_url}/bench/reset", {})
    env = dict(
        base_env,
        TELEGRAM_BOT_TOKEN=TELEGRAM_TOKEN,
        TELEGRAM_API_URL=telegram_url,
        NOTICE_RATE=f"{rate:g}",
        NOTICE_PAID_BROADCAST="YES" if paid else "NO",
    )
    print(
        f"\n-- send, {label}: {before.get('pending', 0):,} notices pending "
        f"({parked:,} parked), NOTICE_RATE={rate:g}"
        f"{', NOTICE_PAID_BROADCAST=YES' if paid else ''} --",
        flush=True,
    )
    expected_s = count / rate
    limit_s = expected_s * SEND_LIMIT_FACTOR + SEND_LIMIT_EXTRA_S
    try:
        measured = run_measured(
            "send",
            quarter,
            env,
            workdir,
            f"send-{int(rate)}",
            limit_s,
            meter,
            arguments,
            stop_at_limit=True,
        )
    finally:
        restored = asyncio.run(unpark(cluster.url, quarter))
    figures, used = measured.figures, measured.used
    stats = get_json(f"{telegram_url}/bench/stats")
    after = asyncio.run(notice_counts(cluster.url, quarter))
    received, span = stats["count"], stats["span_s"]
    achieved = received / span if span > 0 else float("nan")
    ratio = achieved / rate
    ok = ratio >= TARGET_RATE_RATIO and received == count
    if figures is not None:
        print(
            f"  sender: {figures['sent']:,} sent, {figures['held']} held, {figures['retired']} "
            f"retired, {figures['failed']} failed in {figures['seconds']:.2f} s "
            f"(NoticeRun.send; batch window {figures['window']} messages); "
            f"peak memory {figures['hwm_mb']:.0f} MB"
        )
    else:
        print(
            f"  sender STOPPED at its limit of {limit_s:.0f} s ({SEND_LIMIT_FACTOR:g} × the "
            f"{expected_s:.0f} s the pass should take + {SEND_LIMIT_EXTRA_S:.0f} s); "
            f"{after.get('sent', 0) - before.get('sent', 0):,} notices recorded as sent"
        )
    print(
        f"  server: {received:,} sendMessage received, {stats['distinct_chats']:,} distinct "
        f"chats, allow_paid_broadcast on {stats['paid']:,}; first → last {span:.2f} s"
    )
    print(
        f"  achieved {achieved:.1f} msg/s = received / (last − first); "
        f"achieved / configured = {ratio:.3f}  (target ≥ {TARGET_RATE_RATIO})  {verdict(ok)}"
    )
    if stats["gap_p50_s"] is not None:
        print(
            f"  inter-arrival at the server: p50 {stats['gap_p50_s'] * 1000:.2f} ms, "
            f"p99 {stats['gap_p99_s'] * 1000:.2f} ms, max {stats['gap_max_s'] * 1000:.1f} ms "
            f"(1 / rate = {1000 / rate:.2f} ms)"
        )
    sender = "child" if figures is not None else "child_total"
    per_message = used[sender] / max(1, received) * 1000
    print(
        cpu_line(
            used,
            (
                (sender, "sender" if figures is not None else "sender (start-up included)"),
                ("telegram", "Telegram server"),
                ("postgres", "PostgreSQL"),
                ("other", "other processes"),
            ),
        )
        + f"; sender CPU per message {per_message:.2f} ms"
    )
    print(
        f"  notices of {quarter} after the pass: {dict(sorted(after.items()))} "
        f"({restored:,} unparked); before: {dict(sorted(before.items()))}",
        flush=True,
    )
    print_profile(measured.profile, arguments.profile_tree_lines)
    return ok


# --- main ------------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the quarterly notice run (ingest and send) on PostgreSQL.",
    )
    parser.add_argument("--households", type=int, default=20_000, help="sandbox population")
    parser.add_argument("--changes", type=int, default=1_000_000, help="items of the quarter")
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument(
        "--in-feed", type=float, default=0.9, help="share of subscriptions to NIKs in the feed"
    )
    parser.add_argument("--free-count", type=int, default=900, help="notices of the 30/s pass")
    parser.add_argument("--free-rate", type=float, default=30.0)
    parser.add_argument("--paid-count", type=int, default=20_000, help="notices of the paid pass")
    parser.add_argument("--paid-rate", type=float, default=1000.0)
    parser.add_argument("--no-send", action="store_true", help="skip the send passes")
    parser.add_argument("--deadline", type=int, default=720, help="hard limit of the run, s")
    parser.add_argument("--profile", action="store_true", help="ingest and send under pyinstrument")
    parser.add_argument("--profile-tree-lines", type=int, default=60)
    parser.add_argument("--patch", type=Path, help="a file run in the ingest and send processes")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    # Internal: the children.
    parser.add_argument("--child", choices=("floor", "ingest", "send", "telegram"))
    parser.add_argument("--quarter", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if not 0 < arguments.in_feed <= 1 or arguments.subscriptions < 1:
        parser.error("--in-feed must be in (0, 1] and --subscriptions at least 1")
    return arguments


def on_deadline(_signum: int, _frame: Any) -> None:
    raise HardDeadline


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.child == "telegram":
        return serve_telegram(arguments.port)
    if arguments.child is not None:
        return run_child(
            arguments.child,
            arguments.quarter,
            arguments.result,
            arguments.profile_out,
            arguments.patch,
        )

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGALRM, on_deadline)
    signal.alarm(arguments.deadline)
    workdir = Path(tempfile.mkdtemp(prefix="bansos-bench-notices-"))
    cluster: Cluster | None = None
    sandbox: Child | None = None
    telegram: Child | None = None
    ok = True
    began = time.monotonic()
    try:
        print(f"notices bench: {os.cpu_count()} cores, Python {sys.version.split()[0]}", flush=True)
        print("starting a throwaway PostgreSQL cluster…", flush=True)
        cluster = start_cluster(DATABASE_NAME)
        print(
            f"sandbox registry: {arguments.households:,} households, seed {SANDBOX_SEED}…",
            flush=True,
        )
        sandbox, registry_url = start_sandbox(arguments.households, workdir)
        advanced = post_json(
            f"{registry_url}/sandbox/quarters/advance", {"changes": arguments.changes}
        )
        quarter, total = advanced["quarter"], int(advanced["changes"])
        print(f"quarter {quarter} published with {total:,} changes", flush=True)

        in_count = min(total, round(arguments.subscriptions * arguments.in_feed))
        out_count = arguments.subscriptions - in_count
        started = time.perf_counter()
        in_feed, every = asyncio.run(feed_niks(registry_url, quarter, total, in_count))
        read_s = time.perf_counter() - started
        niks = chosen_niks(in_feed, every, out_count)
        del every
        setup = asyncio.run(create_subscriptions(cluster.url, niks))
        print(
            f"setup: feed read for NIKs in {read_s:.1f} s; {int(setup['count']):,} subscriptions "
            f"({len(in_feed):,} to NIKs in the feed, {out_count:,} not), one Telegram chat each: "
            f"{VIA_SUBSCRIBE:,} through SubscriptionService.subscribe in "
            f"{setup['via_subscribe_s']:.1f} s, the rest bulk-inserted in {setup['bulk_s']:.1f} s; "
            f"{int(setup['verified'])} rows of both kinds read back (nik_hash, sealed address, "
            "sealed NIK)",
            flush=True,
        )

        meter = Meter(sandbox.pid, cluster.postmaster_pid)
        base_env = child_env(
            DATABASE_URL=cluster.url,
            REGISTRY_URL=registry_url,
            REGISTRY_TOKEN=SANDBOX_TOKEN,
            BOT_SECRET_KEY=SECRET_KEY,
            BOT_VAR_DIR=str(workdir / "var"),
            LOG_LEVEL="WARNING",
        )

        # 3. The floor.
        print(
            "\n-- floor: RegistryClient.quarter_changes over the whole feed, nothing else --",
            flush=True,
        )
        measured = run_measured("floor", quarter, base_env, workdir, "floor", 600, meter, arguments)
        floor, used = measured.figures, measured.used
        assert floor is not None
        floor_rate = floor["changes"] / floor["seconds"]
        print(
            f"  {floor['changes']:,} changes, {floor['pages']:,} pages in {floor['seconds']:.2f} s "
            f"= {floor_rate:,.0f} changes/s; reader peak memory {floor['hwm_mb']:.0f} MB"
        )
        print(
            cpu_line(
                used,
                (("child", "reader"), ("sandbox", "sandbox"), ("other", "other processes")),
            ),
            flush=True,
        )

        # 4. Ingest.
        print(
            "\n-- ingest: NoticeRun.ingest (build_services + Services.notice_run), own process --",
            flush=True,
        )
        measured = run_measured(
            "ingest", quarter, base_env, workdir, "ingest", 600, meter, arguments
        )
        ingest, used, profile = measured.figures, measured.used, measured.profile
        assert ingest is not None
        ingest_rate = ingest["changes"] / ingest["seconds"]
        ratio = ingest["seconds"] / floor["seconds"]
        counts = asyncio.run(notice_counts(cluster.url, quarter))
        matched_ok = ingest["matched"] == len(in_feed) == sum(counts.values())
        print(
            f"  {ingest['changes']:,} changes in {ingest['seconds']:.2f} s = {ingest_rate:,.0f} "
            f"changes/s; notices matched {ingest['matched']:,} (expected {len(in_feed):,}, "
            f"in the table {sum(counts.values()):,})  {verdict(matched_ok)}"
        )
        print(
            f"  ingest / floor = {ratio:.2f}×  (target ≤ {TARGET_INGEST_RATIO:g}×)  "
            f"{verdict(ratio <= TARGET_INGEST_RATIO)}"
        )
        print(
            f"  peak memory of the ingesting process (VmHWM) {ingest['hwm_mb']:.0f} MB  "
            f"(target < {TARGET_PEAK_MB:.0f} MB)  {verdict(ingest['hwm_mb'] < TARGET_PEAK_MB)}; "
            f"after build_services, before ingest: VmRSS {ingest['rss_before_mb']:.0f} MB"
        )
        print(
            cpu_line(
                used,
                (
                    ("child", "ingester"),
                    ("postgres", "PostgreSQL"),
                    ("sandbox", "sandbox"),
                    ("other", "other processes"),
                ),
            ),
            flush=True,
        )
        print_profile(profile, arguments.profile_tree_lines)
        ok = ok and matched_ok and ratio <= TARGET_INGEST_RATIO
        ok = ok and ingest["hwm_mb"] < TARGET_PEAK_MB

        # 5. Send rate.
        if not arguments.no_send:
            port = free_port()
            telegram_url = f"http://127.0.0.1:{port}"
            telegram = Child.start(
                "Telegram Bot API server",
                [sys.executable, "-m", "bench.notices", "--child", "telegram", "--port", str(port)],
                child_env(),
                workdir / "telegram.log",
            )
            wait_until_ready(telegram, f"{telegram_url}/bench/stats")
            meter.telegram_pid = telegram.pid
            passes = (
                ("free", arguments.free_count, arguments.free_rate, False),
                ("paid broadcast", arguments.paid_count, arguments.paid_rate, True),
            )
            for label, count, rate, paid in passes:
                ok = (
                    send_pass(
                        label,
                        count,
                        rate,
                        paid,
                        quarter,
                        base_env,
                        telegram_url,
                        cluster,
                        workdir,
                        meter,
                        arguments,
                    )
                    and ok
                )
        print(f"\nwhole run {time.monotonic() - began:.0f} s", flush=True)
    except BenchError as problem:
        print(f"bench: {problem}", file=sys.stderr)
        return 1
    except HardDeadline:
        print(f"bench: stopped at the {arguments.deadline} s deadline", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.alarm(0)
        for child in (telegram, sandbox):
            if child is not None:
                child.stop()
        if cluster is not None:
            stop_cluster(cluster)
        if arguments.keep:
            print(f"work folder kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
