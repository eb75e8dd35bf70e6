#!/usr/bin/env python
"""Benchmark: the whole USSD status check, many sessions at once, over real HTTP.

Not part of the test run. Each session is a first-time caller (its own phone number)
doing exactly four requests to the bot's POST /ussd, the way Africa's Talking sends them:

    dial ("")  →  "1" (agree & check)  →  NIK  →  name   ⇒  END + the status

Three processes share the machine, as in a small deployment:

* the sandbox registry (`bansos-bot sandbox-registry`), its own process;
* the bot's web server (`python bench/ussd_status.py --serve-bot`, i.e. build_services +
  create_web_app, what `bansos-bot serve` runs, minus Telegram), its own process;
* the load generator: this process, one aiohttp ClientSession, connection limit =
  concurrency, `concurrency` sessions in flight at every moment.

On PostgreSQL a throwaway cluster is started (tests/support/postgres.py) and migrated
with `bansos-bot migrate` before the bot starts; SQLite uses a fresh temporary file that
the bot migrates itself at start-up.

    python bench/ussd_status.py [--database sqlite|postgresql|both] [--sessions 2000]
                                [--concurrency 100] [--households 20000] [--profile]

With --profile, a separate, shorter pass runs after the timed one against a bot started
under pyinstrument, so the profiler's overhead never distorts the figures; the bot writes
its hottest functions and the top of its call tree when it is stopped, and they are
printed here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `tests.support` is not an installed package
    sys.path.insert(0, str(ROOT))

SECRET_KEY = "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-0001"
SANDBOX_TOKEN = "sandbox-token"
SANDBOX_SEED = 42
# Limits high enough never to throttle the benchmark (every session has its own phone, a
# NIK comes back only every len(people) sessions), while admission still does its work.
LIMITS = {
    "LOOKUPS_SHORT_LIMIT": "100000",
    "LOOKUPS_PER_DAY": "1000000",
    "NAME_FAILURES_PER_NIK": "1000",
    "LOOKUPS_GLOBAL_PER_MINUTE": "10000000",
}
LOOKUP_BUDGET_S = 10  # long, so slowness shows as latency, not as a timeout screen
STEPS = ("dial", "consent", "nik", "name")
SAMPLE_LIMIT = 1000  # the sandbox's maximum per /sandbox/people call
PROGRAMMES = (None, "PKH", "BPNT", "PBI-JK", "BLT", "PIP")  # more distinct people
READY_TIMEOUT_S = 120
REQUEST_TIMEOUT_S = 60
TAIL_LINES = 30


class BenchError(RuntimeError):
    """Something around the benchmark failed (a process died, a server never came up)."""


# --- child processes -----------------------------------------------------------------------


def _die_with_parent() -> None:
    """Runs in the child before exec: get SIGTERM if the benchmark itself is killed."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Child:
    """A subprocess with its output in files (a full pipe would block it)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls,
        name: str,
        command: Sequence[str],
        env: dict[str, str],
        log: Path,
        *,
        cwd: Path = ROOT,
        append: bool = False,
    ) -> Child:
        with log.open("ab" if append else "wb") as out:
            process = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
                preexec_fn=_die_with_parent,
            )
        return cls(name, process, log)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = TAIL_LINES) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def check_alive(self) -> None:
        if not self.alive():
            raise BenchError(
                f"{self.name} exited with code {self.process.returncode}; last output:\n"
                + _indent(self.tail())
            )

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait (a profiled bot writes its report first), then SIGKILL."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait(5)


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(overrides)
    return env


def wait_until_ready(child: Child, url: str, headers: dict[str, str] | None = None) -> None:
    """Poll `url` until it answers 200; fail at once, with its output, if the child dies."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        child.check_alive()
        request = urllib.request.Request(url, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
        except (urllib.error.URLError, OSError) as error:
            last = type(error).__name__
        time.sleep(0.1)
    raise BenchError(
        f"{child.name} not ready after {READY_TIMEOUT_S}s ({last}); last output:\n"
        + _indent(child.tail())
    )


def python_cli(*arguments: str) -> list[str]:
    """`bansos-bot ARGS` with this interpreter (the console script may not be on PATH)."""
    return [
        sys.executable,
        "-c",
        "import sys; from bot.cli import main; sys.exit(main())",
        *arguments,
    ]


# --- CPU accounting (Linux /proc) ---------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces; everything after its closing ")" is split safely.
    return raw[raw.rfind(")") + 2 :].split()


def process_cpu_s(pid: int, *, with_reaped_children: bool = False) -> float:
    fields = _proc_stat(pid)
    if fields is None:
        return 0.0
    # Fields 14–17 of stat (utime, stime, cutime, cstime) are 11–14 after "(comm) ".
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def cluster_cpu_s(postmaster_pid: int) -> float:
    """The postmaster (with its reaped backends) plus every live backend."""
    total = process_cpu_s(postmaster_pid, with_reaped_children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields is not None and int(fields[1]) == postmaster_pid:
                total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (/proc/stat)."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user time
    return (total - idle) / _TICK, total / _TICK


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuMeter:
    """CPU seconds used by each process of the benchmark between start() and stop()."""

    bot_pid: int
    sandbox_pid: int
    postmaster_pid: int | None
    _before: dict[str, float] = field(default_factory=dict)
    _machine_before: tuple[float, float] = (0.0, 0.0)
    used: dict[str, float] = field(default_factory=dict)

    def _sample(self) -> dict[str, float]:
        sample = {
            "bot": process_cpu_s(self.bot_pid),
            "sandbox": process_cpu_s(self.sandbox_pid),
            "load generator": self_cpu_s(),
        }
        if self.postmaster_pid is not None:
            sample["postgres"] = cluster_cpu_s(self.postmaster_pid)
        return sample

    def start(self) -> None:
        self._before = self._sample()
        self._machine_before = machine_busy_s()

    def stop(self) -> None:
        after = self._sample()
        self.used = {name: after[name] - self._before[name] for name in after}
        busy, _ = machine_busy_s()
        # Whatever else ran on the machine meanwhile (other people's tests, say): it competes
        # for the same two cores, so figures taken while it is large are pessimistic.
        self.used["other processes"] = max(
            0.0, busy - self._machine_before[0] - sum(self.used.values())
        )


# --- the load -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What each screen must show, in the default language (Indonesian)."""

    consent: str
    nik_prompt: str
    name_prompt: str
    registry_busy: str
    service_busy: str
    not_found: str
    throttled: str
    quarters: tuple[str, ...]  # how a result may name the current quarter ("2026Q4", …)

    @classmethod
    def load(cls) -> Expected:
        from bot.dialogs.status_report import quarter_words
        from bot.i18n import translator
        from registry_client.sandbox import CURRENT_QUARTER

        t = translator("id")
        return cls(
            quarters=(CURRENT_QUARTER, quarter_words(CURRENT_QUARTER, t)),
            consent="1 " + t.gettext("Agree, check status"),
            nik_prompt=t.gettext("Enter the NIK (16 digits, as on the KTP):"),
            name_prompt=t.gettext("Enter the full name as on the KTP:"),
            registry_busy=t.gettext("The registry is busy. Please try again in a few minutes."),
            service_busy=t.gettext("The service is busy. Please dial again in a few minutes."),
            not_found=t.gettext(
                "No record matches this NIK and name. Check both against the KTP, or ask "
                "the village office about a proposal (usulan)."
            )[:30],
            throttled=t.gettext("Too many checks in the last hour. Please try again later."),
        )

    def problem(self, step: str, answer: str) -> str | None:
        """None when `answer` is right for `step`, else the kind of error."""
        if self.service_busy in answer:
            return "service busy (time budget or exception)"
        if step == "dial":
            return None if answer.startswith("CON ") and self.consent in answer else "no consent"
        if step == "consent":
            ok = answer.startswith("CON ") and self.nik_prompt in answer
            return None if ok else "no NIK prompt"
        if step == "nik":
            ok = answer.startswith("CON ") and self.name_prompt in answer
            return None if ok else "no name prompt"
        if not answer.startswith("END "):
            return "no END screen"
        if self.registry_busy in answer:
            return "registry busy"
        if self.not_found in answer:
            return "no record"
        if self.throttled in answer:
            return "throttled"
        return None if any(q in answer for q in self.quarters) else "not a status result"


@dataclass
class PassResult:
    sessions: int
    concurrency: int
    wall_s: float = 0.0
    completed: int = 0
    requests: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    session_s: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # one answer per error kind
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def all_latencies(self) -> list[float]:
        return [value for step in STEPS for value in self.latencies[step]]


async def fetch_people(sandbox_url: str, wanted: int) -> list[tuple[str, str]]:
    """Distinct (NIK, name) pairs from the sandbox, as the registry client reads them."""
    from registry_client import RegistryClient

    people: dict[str, str] = {}
    async with RegistryClient(sandbox_url, SANDBOX_TOKEN) as registry:
        for programme in PROGRAMMES:
            for nik, name in await registry.sample_people(SAMPLE_LIMIT, programme):
                people.setdefault(nik, name)
            if len(people) >= wanted:
                break
    if not people:
        raise BenchError("the sandbox registry returned no people")
    return list(people.items())


async def run_pass(
    ussd_url: str,
    people: Sequence[tuple[str, str]],
    *,
    sessions: int,
    concurrency: int,
    first_phone: int,
    expected: Expected,
    meter: CpuMeter | None = None,
) -> PassResult:
    """`sessions` status checks, `concurrency` of them in flight at every moment."""
    import aiohttp

    result = PassResult(sessions=sessions, concurrency=concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    numbers: Iterator[int] = iter(range(sessions))

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def post(session_id: str, phone: str, text: str) -> str:
            form = {
                "sessionId": session_id,
                "serviceCode": "*123*7#",
                "phoneNumber": phone,
                "networkCode": "51010",
                "text": text,
            }
            async with http.post(ussd_url, data=form) as response:
                body = await response.text()
                if response.status != 200:
                    raise _HttpStatus(response.status)
                return body

        async def one_session(number: int) -> None:
            nik, name = people[number % len(people)]
            phone = f"+62{first_phone + number}"
            session_id = f"ATUid_bench_{first_phone + number}"
            answers = ["1", nik, name]
            started = time.perf_counter()
            for index, step in enumerate(STEPS):
                text = "*".join(answers[:index])
                sent = time.perf_counter()
                try:
                    answer = await post(session_id, phone, text)
                except _HttpStatus as status:
                    result.errors[f"{step}: HTTP {status.code}"] += 1
                    return
                except (aiohttp.ClientError, TimeoutError) as error:
                    result.errors[f"{step}: {type(error).__name__}"] += 1
                    return
                finally:
                    result.requests += 1
                result.latencies[step].append(time.perf_counter() - sent)
                problem = expected.problem(step, answer)
                if problem is not None:
                    result.errors[f"{step}: {problem}"] += 1
                    result.examples.setdefault(f"{step}: {problem}", answer)
                    return
            result.session_s.append(time.perf_counter() - started)
            result.completed += 1

        async def worker() -> None:
            for number in numbers:  # one shared iterator: the next free worker takes it
                await one_session(number)

        if meter is not None:
            meter.start()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, sessions))))
        result.wall_s = time.perf_counter() - started
        if meter is not None:
            meter.stop()
            result.cpu_s = meter.used
    return result


class _HttpStatus(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# --- figures --------------------------------------------------------------------------------


def quantile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of an already sorted list."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def latency_row(label: str, values: Sequence[float]) -> str:
    ordered = sorted(values)
    ms = [quantile(ordered, q) * 1000 for q in (0.5, 0.9, 0.99)]
    top = (ordered[-1] if ordered else float("nan")) * 1000
    return f"    {label:<9}{len(ordered):>7}{ms[0]:>9.1f}{ms[1]:>9.1f}{ms[2]:>9.1f}{top:>9.1f}"


def report(database: str, result: PassResult) -> str:
    wall = result.wall_s
    failed = sum(result.errors.values())
    lines = [
        f"== {database}: {result.sessions} sessions, concurrency {result.concurrency} ==",
        f"  wall time           {wall:8.2f} s",
        f"  completed checks/s  {result.completed / wall:8.1f}   "
        f"({result.completed} of {result.sessions} verified)",
        f"  requests/s          {result.requests / wall:8.1f}   ({result.requests} requests)",
        f"  errors              {failed:8d}",
    ]
    for kind, count in result.errors.most_common():
        lines.append(f"      {count:6d}  {kind}")
        if kind in result.examples:
            lines.append(f"              e.g. {result.examples[kind]!r}")
    lines.append("  latency per request (ms)")
    lines.append(f"    {'step':<9}{'n':>7}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    lines.append(latency_row("all", result.all_latencies))
    lines += [latency_row(step, result.latencies[step]) for step in STEPS]
    lines.append(latency_row("session", result.session_s))
    if result.cpu_s:
        used = ", ".join(
            f"{name} {seconds:.1f} s ({seconds / wall:.0%})"
            for name, seconds in result.cpu_s.items()
        )
        lines.append(f"  CPU during the pass (100% = one core of {os.cpu_count()}):")
        lines.append(f"    {used}")
        if result.requests and result.cpu_s.get("bot"):
            per_request = result.cpu_s["bot"] / result.requests
            lines.append(
                f"  bot CPU per request {per_request * 1000:.1f} ms: one process tops out near "
                f"{1 / per_request:.0f} requests/s = {1 / per_request / len(STEPS):.0f} checks/s"
            )
    return "\n".join(lines)


def summary_table(results: dict[str, PassResult]) -> str:
    header = (
        "| database | sessions | conc. | wall s | checks/s | req/s | p50 ms | p90 ms | p99 ms "
        "| max ms | name p50 ms | name p99 ms | errors |"
    )
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    for database, result in results.items():
        every = sorted(result.all_latencies)
        name = sorted(result.latencies["name"])
        rows.append(
            f"| {database} | {result.sessions} | {result.concurrency} | {result.wall_s:.2f} "
            f"| {result.completed / result.wall_s:.1f} | {result.requests / result.wall_s:.1f} "
            f"| {quantile(every, 0.5) * 1000:.1f} | {quantile(every, 0.9) * 1000:.1f} "
            f"| {quantile(every, 0.99) * 1000:.1f} | {every[-1] * 1000 if every else 0:.1f} "
            f"| {quantile(name, 0.5) * 1000:.1f} | {quantile(name, 0.99) * 1000:.1f} "
            f"| {sum(result.errors.values())} |"
        )
    return "\n".join(rows)


# --- one database -------------------------------------------------------------------------


@dataclass
class Database:
    kind: str
    url: str
    postmaster_pid: int | None = None


@contextlib.contextmanager
def database_for(kind: str, workdir: Path) -> Iterator[Database]:
    if kind == "sqlite":
        yield Database(kind, f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}")
        return
    from tests.support import postgres

    # Its own top-level folder: the cluster runs as the postgres user when we are root,
    # and that user cannot enter our private work folder.
    folder = Path(tempfile.mkdtemp(prefix="bansos-bench-pg-"))
    try:
        print("  starting a throwaway PostgreSQL cluster…", flush=True)
        try:
            url = postgres.start(folder)
        except subprocess.CalledProcessError as error:
            output = (error.stderr or b"").decode(errors="replace")
            raise BenchError(f"PostgreSQL did not start:\n{_indent(output)}") from None
        pid_file = folder / "data" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        migrate = subprocess.run(
            python_cli("migrate"),
            cwd=ROOT,
            env=child_env(
                DATABASE_URL=url,
                BOT_SECRET_KEY=SECRET_KEY,
                LOG_LEVEL="WARNING",
                BOT_VAR_DIR=str(workdir / "var"),
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if migrate.returncode != 0:
            raise BenchError(f"`bansos-bot migrate` failed:\n{_indent(migrate.stderr)}")
        yield Database(kind, url, postmaster)
    finally:
        postgres.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


def start_bot(
    database: Database,
    registry_url: str,
    workdir: Path,
    *,
    log_level: str,
    profile_out: Path | None = None,
    tag: str = "bot",
) -> tuple[Child, str]:
    port = free_port()
    env = child_env(
        DATABASE_URL=database.url,
        REGISTRY_URL=registry_url,
        REGISTRY_TOKEN=SANDBOX_TOKEN,
        BOT_SECRET_KEY=SECRET_KEY,
        BOT_VAR_DIR=str(workdir / "var"),
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(port),
        USSD_LOOKUP_BUDGET_S=str(LOOKUP_BUDGET_S),
        **LIMITS,
        LOG_LEVEL=log_level,
    )
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-bot"]
    if profile_out is not None:
        command += ["--profile-out", str(profile_out)]
    child = Child.start(f"bot ({database.kind})", command, env, workdir / f"{tag}.log")
    base = f"http://127.0.0.1:{port}"
    wait_until_ready(child, f"{base}/healthz")
    return child, f"{base}/ussd"


def bench_database(
    kind: str,
    arguments: argparse.Namespace,
    sandbox: Child,
    sandbox_url: str,
    people: Sequence[tuple[str, str]],
    expected: Expected,
    workdir: Path,
    phones: Iterator[int],
) -> PassResult:
    folder = workdir / kind
    folder.mkdir()
    with database_for(kind, folder) as database:
        bot, ussd_url = start_bot(database, sandbox_url, folder, log_level=arguments.bot_log_level)
        try:
            warm = min(arguments.warmup, arguments.sessions)
            if warm:
                asyncio.run(
                    run_pass(
                        ussd_url,
                        people,
                        sessions=warm,
                        concurrency=arguments.concurrency,
                        first_phone=next(phones),
                        expected=expected,
                    )
                )
            meter = CpuMeter(bot.pid, sandbox.pid, database.postmaster_pid)
            result = asyncio.run(
                run_pass(
                    ussd_url,
                    people,
                    sessions=arguments.sessions,
                    concurrency=arguments.concurrency,
                    first_phone=next(phones),
                    expected=expected,
                    meter=meter,
                )
            )
            bot.check_alive()
            sandbox.check_alive()
        finally:
            bot.stop()
        print(report(kind, result), flush=True)

        if arguments.profile:
            profile_pass(database, arguments, sandbox_url, people, expected, folder, phones)
    return result


def profile_pass(
    database: Database,
    arguments: argparse.Namespace,
    sandbox_url: str,
    people: Sequence[tuple[str, str]],
    expected: Expected,
    folder: Path,
    phones: Iterator[int],
) -> None:
    sessions = min(arguments.profile_sessions, arguments.sessions)
    out = folder / "profile"
    bot, ussd_url = start_bot(
        database,
        sandbox_url,
        folder,
        log_level=arguments.bot_log_level,
        profile_out=out,
        tag="bot-profiled",
    )
    try:
        result = asyncio.run(
            run_pass(
                ussd_url,
                people,
                sessions=sessions,
                concurrency=arguments.concurrency,
                first_phone=next(phones),
                expected=expected,
            )
        )
        bot.check_alive()
    finally:
        bot.stop(timeout=120)  # rendering the profile takes a moment
    flat, tree = out.with_suffix(".flat.txt"), out.with_suffix(".tree.txt")
    if not flat.exists():
        raise BenchError("the profiled bot wrote no profile; last output:\n" + _indent(bot.tail()))
    print(
        f"\n-- profile of the bot ({database.kind}), {sessions} sessions under pyinstrument: "
        f"{result.completed / result.wall_s:.1f} checks/s, "
        f"{sum(result.errors.values())} errors --",
    )
    print(flat.read_text())
    tree_lines = tree.read_text().splitlines()
    print("-- top of the call tree (pyinstrument, library internals folded) --")
    print("\n".join(tree_lines[: arguments.profile_tree_lines]), flush=True)


# --- the bot process (--serve-bot) --------------------------------------------------------


def serve_bot(profile_out: Path | None) -> int:
    from bot.logging_setup import configure_logging
    from bot.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level)  # as `bansos-bot serve` does
    from bot import event_loop

    event_loop.run(_serve_bot(settings, profile_out))
    return 0


async def _serve_bot(settings: Any, profile_out: Path | None) -> None:
    from aiohttp import web

    from bot.app import build_services
    from handlers.web import create_web_app

    assert settings.registry_url is not None, "REGISTRY_URL is set by the benchmark"
    services = await build_services(settings, registry_url=settings.registry_url)
    runner = web.AppRunner(create_web_app(services.ussd, services.health))
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    profiler = None
    try:
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
        if profile_out is not None:
            from pyinstrument import Profiler

            # async_mode "disabled": sample the whole event-loop thread, every task and
            # callback, idle time (the selector) included.
            profiler = Profiler(interval=0.001, async_mode="disabled")
            profiler.start()
        await stop.wait()
    finally:
        if profiler is not None:
            session = profiler.stop()
            assert profile_out is not None
            profile_out.with_suffix(".flat.txt").write_text(flat_profile(session))
            profile_out.with_suffix(".tree.txt").write_text(
                profiler.output_text(unicode=True, color=False, show_all=False)
            )
        await runner.cleanup()
        await services.close()


def flat_profile(session: Any, top: int = 25) -> str:
    """Hottest functions by self time, with their inclusive time, from a pyinstrument session."""
    root = session.root_frame()
    if root is None:
        return "(no samples)\n"
    total = root.time
    self_time: Counter[tuple[str, str, int]] = Counter()
    inclusive: Counter[tuple[str, str, int]] = Counter()

    def key(frame: Any) -> tuple[str, str, int]:
        return (frame.function or "?", frame.file_path_short or "", frame.line_no or 0)

    by_package: Counter[str] = Counter()

    def walk(frame: Any, on_stack: frozenset[tuple[str, str, int]], package: str) -> None:
        children = list(frame.children)
        if frame.is_synthetic:  # "[self]", "[await]" …: time of the parent itself
            return
        k = key(frame)
        own = frame.time - sum(child.time for child in children if not child.is_synthetic)
        self_time[k] += own
        if k not in on_stack:  # recursion counts once
            inclusive[k] += frame.time
        # A built-in (socket.send, epoll.poll …) counts for the package that called it.
        package = _package(k[1]) or package
        by_package[package] += own
        for child in children:
            walk(child, on_stack | {k}, package)

    walk(root, frozenset(), "other")
    idle = sum(
        t
        for (function, path, _), t in inclusive.items()
        if function == "select" and path.endswith("selectors.py")
    )
    lines = [
        f"sampled {total:.2f} s of the bot's event-loop thread, {session.sample_count} samples; "
        f"waiting in the selector (idle) {idle:.2f} s = {idle / total:.0%}",
        f"{'self s':>8} {'self %':>7} {'total s':>8}  function",
    ]
    for k, seconds in self_time.most_common(top):
        function, path, line = k
        lines.append(
            f"{seconds:8.2f} {seconds / total:7.1%} {inclusive[k]:8.2f}  {function}  {path}:{line}"
        )
    lines += ["", "self time by package (built-ins count for their caller; selectors = idle):"]
    lines += [
        f"{seconds:8.2f} {seconds / total:7.1%}  {package}"
        for package, seconds in by_package.most_common(12)
    ]
    lines += [
        "",
        "by total (inclusive) time, event-loop and server plumbing left out:",
        f"{'total s':>8} {'total %':>7} {'self s':>8}  function",
    ]
    plumbing = (
        "asyncio/",
        "<thread>",
        "ussd_status.py",
        "aiohttp/web_",
        "contextlib.py",
        "selectors.py",
    )
    ranked = [
        (k, t)
        for k, t in inclusive.most_common()
        if not k[1].startswith(plumbing) and not k[1].endswith(plumbing)
    ]
    for k, seconds in ranked[:top]:
        function, path, line = k
        lines.append(
            f"{seconds:8.2f} {seconds / total:7.1%} {self_time[k]:8.2f}  {function}  {path}:{line}"
        )
    return "\n".join(lines) + "\n"


def _package(path: str) -> str | None:
    """The package of a profiled file: sqlalchemy/orm/session.py → sqlalchemy; None if built-in."""
    if not path or path.startswith("<"):
        return None
    head = path.split("/", 1)[0]
    if head in ("bot", "handlers", "registry_client"):
        return "bansos-bot (bot, handlers, registry_client)"
    return head.removesuffix(".py")


# --- main -----------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark the USSD status check over real HTTP on SQLite and PostgreSQL.",
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--sessions", type=int, default=2000, help="status checks per database")
    parser.add_argument("--concurrency", type=int, default=100, help="sessions in flight")
    parser.add_argument("--households", type=int, default=20_000, help="sandbox population")
    parser.add_argument(
        "--warmup",
        type=int,
        default=100,
        help="untimed sessions before the timed pass (default 100)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the timed pass, a shorter pass against a profiled bot",
    )
    parser.add_argument(
        "--profile-sessions",
        type=int,
        default=500,
        help="sessions of the profiled pass (default 500)",
    )
    parser.add_argument(
        "--profile-tree-lines",
        type=int,
        default=80,
        help="lines of the call tree to print (default 80)",
    )
    parser.add_argument(
        "--bot-log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="the bot's LOG_LEVEL (default INFO, as `bansos-bot serve`)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, DB)")
    # Internal: the bot's web server, started by the benchmark in its own process.
    parser.add_argument("--serve-bot", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.sessions < 1 or arguments.concurrency < 1 or arguments.households < 1:
        parser.error("--sessions, --concurrency and --households must be at least 1")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.serve_bot:
        return serve_bot(arguments.profile_out)

    # Ctrl-C and SIGTERM unwind through the finally blocks, so every child is stopped (SIGINT
    # explicitly too: a shell starting us in the background leaves it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    kinds = ["sqlite", "postgresql"] if arguments.database == "both" else [arguments.database]
    workdir = Path(tempfile.mkdtemp(prefix="bansos-bench-"))
    # Distinct phone numbers in every pass: each session is a first-time caller.
    phones = iter(range(81_000_000_000, 89_000_000_000, 10_000_000))
    sandbox: Child | None = None
    results: dict[str, PassResult] = {}
    try:
        port = free_port()
        sandbox_url = f"http://127.0.0.1:{port}"
        print(
            f"sandbox registry: {arguments.households} households, seed {SANDBOX_SEED}…", flush=True
        )
        sandbox = Child.start(
            "sandbox registry",
            python_cli(
                "sandbox-registry",
                "--port",
                str(port),
                "--households",
                str(arguments.households),
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
        wait_until_ready(
            sandbox,
            f"{sandbox_url}/sandbox/people?limit=1",
            {"Authorization": f"Bearer {SANDBOX_TOKEN}"},
        )
        people = asyncio.run(fetch_people(sandbox_url, arguments.sessions))
        print(
            f"{len(people)} distinct people from the sandbox; "
            f"{arguments.sessions} sessions × 4 requests per database\n",
            flush=True,
        )
        expected = Expected.load()
        for kind in kinds:
            results[kind] = bench_database(
                kind, arguments, sandbox, sandbox_url, people, expected, workdir, phones
            )
            print(flush=True)
        print(summary_table(results))
    except BenchError as problem:
        print(f"bench: {problem}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if sandbox is not None:
            sandbox.stop()
        if arguments.keep:
            print(f"work folder kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    failed = any(result.errors for result in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
