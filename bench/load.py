#!/usr/bin/env python
"""Open-loop load on the USSD status check: a fixed arrival rate, beside a floor.

Not part of the test run. Sessions arrive at a fixed rate whatever the service does
(open loop: a slow answer does not slow the arrivals, as on launch day). Each session is a
first-time caller doing the four requests of a status check back to back, as a phone
does. Per stepped rate it prints requests per second offered and achieved, p50 / p99 / max
latency per request, errors, and the bot's CPU per request; then the same load against a
trivial aiohttp handler on this machine (the floor), and the ratios.

Processes: a throwaway PostgreSQL cluster, the sandbox registry, `bansos-bot serve`'s web
app (bench/ussd_status.py --serve-bot), the floor server, and this load generator.

    python bench/load.py [--rates 50,100,200,300] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ussd_status import (  # noqa: E402
    SANDBOX_SEED,
    SANDBOX_TOKEN,
    Child,
    child_env,
    database_for,
    fetch_people,
    free_port,
    process_cpu_s,
    python_cli,
    quantile,
    start_bot,
    wait_until_ready,
)

REQUESTS_PER_SESSION = 4
REQUEST_TIMEOUT_S = 30


@dataclass
class StepResult:
    offered: float  # requests per second
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_s: float = 0.0

    @property
    def achieved(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def row(self) -> str:
        ordered = sorted(self.latencies)
        p50, p99 = (quantile(ordered, q) * 1000 for q in (0.5, 0.99))
        top = (ordered[-1] if ordered else float("nan")) * 1000
        cpu = self.cpu_s / len(ordered) * 1000 if ordered else float("nan")
        return (
            f"{self.offered:>8.0f}{self.achieved:>10.0f}{p50:>9.1f}{p99:>9.1f}{top:>9.1f}"
            f"{self.errors:>8}{cpu:>9.2f}"
        )


HEADER = (
    f"{'offered':>8}{'achieved':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
    f"{'CPU ms':>9}"
)


async def run_step(
    url: str, rate: float, seconds: float, people: list[tuple[str, str]], phones: list[int]
) -> StepResult:
    """Sessions arrive every REQUESTS_PER_SESSION / rate seconds for `seconds`."""
    import aiohttp

    result = StepResult(offered=rate)
    interval = REQUESTS_PER_SESSION / rate
    sessions = max(1, int(seconds / interval))
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def session(n: int) -> None:
            nik, name = people[n % len(people)]
            phone = phones.pop()
            texts = ("", "1", f"1*{nik}", f"1*{nik}*{name}")
            for text in texts:
                form = {"sessionId": f"load-{phone}", "phoneNumber": f"+62{phone}", "text": text}
                sent = time.perf_counter()
                try:
                    async with http.post(url, data=form) as response:
                        body = await response.text()
                        ok = response.status == 200 and body.startswith(("CON ", "END "))
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if not ok:
                    result.errors += 1
                    return
                result.latencies.append(time.perf_counter() - sent)

        started = time.perf_counter()
        tasks = []
        for n in range(sessions):
            delay = started + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(session(n)))
        await asyncio.gather(*tasks)
        result.seconds = time.perf_counter() - started
    return result


def serve_floor(port: int) -> int:
    """The floor: the same HTTP stack and form parsing, no dialog, no database."""
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        form = await request.post()
        return web.Response(text=f"CON {len(form)}", content_type="text/plain")

    async def alive(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/ussd", answer)
    app.router.add_get("/healthz", alive)
    web.run_app(app, host="127.0.0.1", port=port, print=None)
    return 0


def measure(
    label: str,
    url: str,
    pid: int,
    rates: list[float],
    seconds: float,
    people: list[tuple[str, str]],
) -> list[StepResult]:
    print(f"\n{label}\n{HEADER}", flush=True)
    phones = list(range(81_000_000_000, 81_000_000_000 + 2_000_000))
    results = []
    for rate in rates:
        before = process_cpu_s(pid)
        result = asyncio.run(run_step(url, rate, seconds, people, phones))
        result.cpu_s = process_cpu_s(pid) - before
        results.append(result)
        print(result.row(), flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="50,100,200,300", help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--households", type=int, default=20_000)
    parser.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_floor:
        return serve_floor(arguments.serve_floor)
    rates = [float(r) for r in arguments.rates.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="bansos-load-"))
    children: list[Child] = []
    try:
        port = free_port()
        sandbox_url = f"http://127.0.0.1:{port}"
        sandbox = Child.start(
            "sandbox registry",
            python_cli("sandbox-registry", "--port", str(port), "--households",
                       str(arguments.households), "--seed", str(SANDBOX_SEED)),
            child_env(LOG_LEVEL="WARNING"),
            workdir / "sandbox.log",
        )  # fmt: skip
        children.append(sandbox)
        wait_until_ready(
            sandbox,
            f"{sandbox_url}/sandbox/people?limit=1",
            {"Authorization": f"Bearer {SANDBOX_TOKEN}"},
        )
        people = asyncio.run(fetch_people(sandbox_url, 5000))
        floor_port = free_port()
        floor = Child.start(
            "floor",
            [sys.executable, str(Path(__file__).resolve()), "--serve-floor", str(floor_port)],
            child_env(),
            workdir / "floor.log",
        )
        children.append(floor)
        wait_until_ready(floor, f"http://127.0.0.1:{floor_port}/healthz")
        with database_for("postgresql", workdir) as database:
            bot, url = start_bot(database, sandbox_url, workdir, log_level="WARNING")
            children.append(bot)
            served = measure(
                "bot on PostgreSQL (one instance)", url, bot.pid, rates, arguments.seconds, people
            )
            bot.stop()
        floored = measure(
            "floor: a trivial aiohttp handler",
            f"http://127.0.0.1:{floor_port}/ussd",
            floor.pid,
            rates,
            arguments.seconds,
            people,
        )
        print("\nratios to the floor at each rate (p50, p99):")
        for mine, base in zip(served, floored, strict=True):
            p50 = quantile(sorted(mine.latencies), 0.5) / quantile(sorted(base.latencies), 0.5)
            p99 = quantile(sorted(mine.latencies), 0.99) / quantile(sorted(base.latencies), 0.99)
            print(f"{mine.offered:>8.0f} req/s: p50 {p50:.1f}x, p99 {p99:.1f}x")
    finally:
        for child in reversed(children):
            child.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
