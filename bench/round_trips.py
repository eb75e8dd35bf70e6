#!/usr/bin/env python
"""Database round trips and bot CPU per USSD request, on PostgreSQL, step by step.

Not part of the test run. One in-process bot (build_services, as `serve` wires it) on a
throwaway PostgreSQL cluster, the sandbox registry in its own process. Sequential status
checks (dial → agree → NIK → name), each from a new phone. Counted per request, from
SQLAlchemy's engine events: statements, BEGIN, COMMIT/ROLLBACK and connection pings; each
is one round trip to the server (prepared statements are cached after the first use, so
the warm-up pass is not counted). CPU is this process's CPU time (the registry runs
elsewhere), beside the floor of the same run: the same requests' render and parse with a
stub engine.

    python bench/round_trips.py [--checks 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cluster import start_cluster, stop_cluster  # noqa: E402

STEPS = ("dial", "agree", "nik", "name")
SECRET_KEY = "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-0001"


class RoundTrips:
    """Counts what reaches the server, by kind, between two `take()` calls: statements
    (SQLAlchemy's cursor events, and those the hot path sends through the driver itself,
    bot/storage/driver_sql.py), BEGIN, COMMIT and ROLLBACK as the driver sends them,
    statement preparation (a cache miss) and pool pings."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.counts: Counter[str] = Counter()
        sync = engine.sync_engine
        event.listen(sync, "before_cursor_execute", lambda *a, **k: self._add("statement"))
        counts = self
        from bot.storage.driver_sql import Driver

        fetch = Driver.fetch

        async def counted_fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
            counts._add("statement")
            return await fetch(self, *args, **kwargs)

        Driver.fetch = counted_fetch  # type: ignore[method-assign]
        import asyncpg

        # BEGIN, COMMIT and ROLLBACK are simple queries on the driver's connection, whether
        # SQLAlchemy's adapter sends them or the hot path's lean unit does.
        execute = asyncpg.connection.Connection.execute

        async def counted_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            word = query.split(None, 1)[0].lower() if query.strip() else ""
            counts._add(word if word in ("begin", "commit", "rollback") else "statement")
            return await execute(self, query, *args, **kwargs)

        asyncpg.connection.Connection.execute = counted_execute  # type: ignore[method-assign]
        prepare = asyncpg.connection.Connection.prepare

        async def counted_prepare(self: Any, *args: Any, **kwargs: Any) -> Any:
            counts._add("prepare")
            return await prepare(self, *args, **kwargs)

        asyncpg.connection.Connection.prepare = counted_prepare  # type: ignore[method-assign]
        ping = sync.dialect.do_ping

        def counted_ping(connection: Any) -> Any:
            counts._add("ping")
            return ping(connection)

        sync.dialect.do_ping = counted_ping

    def _add(self, kind: str) -> None:
        self.counts[kind] += 1

    def take(self) -> Counter[str]:
        taken, self.counts = self.counts, Counter()
        return taken


async def run(checks: int, cluster: Any, port: int) -> None:
    from bot.app import build_services
    from bot.settings import load_settings
    from handlers.ussd import UssdRequest
    from registry_client.sandbox.population import generate_population

    env = {
        "DATABASE_URL": cluster.url,
        "BOT_SECRET_KEY": SECRET_KEY,
        "BOT_VAR_DIR": str(cluster.folder / "var"),
        "REGISTRY_URL": f"http://127.0.0.1:{port}",
        "REGISTRY_TOKEN": "sandbox-token",
        "USSD_LOOKUP_BUDGET_S": "10",
        "LOOKUPS_SHORT_LIMIT": "100000",
        "LOOKUPS_PER_DAY": "1000000",
        "LOOKUPS_GLOBAL_PER_MINUTE": "10000000",
        "LOG_LEVEL": "WARNING",
    }
    settings = load_settings(env)
    await _wait_for_sandbox(port)
    services = await build_services(settings, registry_url=env["REGISTRY_URL"])
    people = generate_population(2000, 42).sample(checks + 50)
    trips = RoundTrips(services.database.engine)
    per_step: dict[str, Counter[str]] = {step: Counter() for step in STEPS}
    cpu: dict[str, float] = dict.fromkeys(STEPS, 0.0)
    try:
        for n, person in enumerate(people):
            warm = n < 50
            answers: list[str] = []
            session = f"bench-{n}"
            for step, answer in zip(STEPS, ("", "1", person.nik, person.name), strict=True):
                if answer:
                    answers.append(answer)
                request = UssdRequest(session, f"+62811{n:07d}", "*123#", tuple(answers))
                trips.take()
                started = time.process_time()
                screen = await services.ussd.answer(request)
                spent = time.process_time() - started
                counted = trips.take()
                if not warm:
                    per_step[step] += counted
                    cpu[step] += spent
            assert screen.ends, screen.text
    finally:
        await services.close()
    measured = len(people) - 50
    total = 0.0
    print(f"{measured} status checks on PostgreSQL, per request (after 50 warm-up checks):")
    print(f"{'step':>6} {'round trips':>12} {'statements':>11} {'begin':>6} {'commit':>7} "
          f"{'prepare':>8} {'ping':>5} {'CPU ms':>7}")  # fmt: skip
    for step in STEPS:
        c = per_step[step]
        trips_per = sum(c.values()) / measured
        total += trips_per
        print(
            f"{step:>6} {trips_per:12.1f} {c['statement'] / measured:11.1f} "
            f"{c['begin'] / measured:6.1f} {(c['commit'] + c['rollback']) / measured:7.1f} "
            f"{c['prepare'] / measured:8.1f} {c['ping'] / measured:5.1f} "
            f"{cpu[step] / measured * 1000:7.2f}"
        )
    all_cpu = sum(cpu.values()) / measured / len(STEPS) * 1000
    print(f"whole check: {total:.1f} round trips; bot CPU {all_cpu:.2f} ms per request")
    floor = _floor_cpu_ms(people[:measured])
    print(f"floor (parse + render with a stub engine): {floor:.3f} ms per request; "
          f"ratio {all_cpu / floor:.1f}x")  # fmt: skip


def _floor_cpu_ms(people: list[Any]) -> float:
    """The channel work alone: parse the gateway form and render a reply."""
    from bot.dialogs import router
    from bot.dialogs.model import Input, InputKind
    from handlers.ussd import parse_africas_talking, render_screen

    reply = router.step(router.new_state("id"), Input(InputKind.START)).reply
    assert reply is not None
    started = time.process_time()
    count = 0
    for n, person in enumerate(people):
        for text in ("", "1", f"1*{person.nik}", f"1*{person.nik}*{person.name}"):
            form = {"sessionId": f"s{n}", "phoneNumber": f"+62811{n:07d}", "text": text}
            parse_africas_talking(form)
            render_screen(reply)
            count += 1
    return (time.process_time() - started) / count * 1000


async def _wait_for_sandbox(port: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"http://127.0.0.1:{port}/v1/quarters") as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the sandbox registry did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="print where the CPU goes")
    arguments = parser.parse_args()
    cluster = start_cluster("bench_round_trips")
    port = 18000 + os.getpid() % 1000
    sandbox = subprocess.Popen(
        [sys.executable, "-c", "from bot.cli import main; raise SystemExit(main())",
         "sandbox-registry", "--port", str(port), "--households", "2000", "--seed", "42"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        if arguments.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(asyncio.run, run(arguments.checks, cluster, port))
            stats = pstats.Stats(profiler).sort_stats("tottime")
            stats.print_stats(25)
        else:
            asyncio.run(run(arguments.checks, cluster, port))
    finally:
        sandbox.terminate()
        sandbox.wait()
        stop_cluster(cluster)


if __name__ == "__main__":
    main()
