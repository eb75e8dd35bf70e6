"""The `bansos-bot` command: serve, migrate, outbox, notices, keys, facilitator,
sandbox-registry."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TextIO

from bot.key_store import KeyFileBroken
from bot.logging_setup import configure_logging
from bot.settings import Settings, SettingsError, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    if arguments.command == "sandbox-registry":
        # The sandbox needs no database, key or token of the bot: create none of them.
        configure_logging("INFO")
        return _sandbox(arguments)
    try:
        settings = load_settings()
    except SettingsError as problem:
        print(f"bansos-bot: configuration error: {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    handler = {
        "serve": _serve,
        "migrate": _migrate,
        "outbox": _outbox,
        "notices": _notices,
        "keys": _keys,
        "facilitator": _facilitator,
    }[arguments.command]
    try:
        return handler(settings, arguments)
    except KeyboardInterrupt:
        return 130
    except KeyFileBroken as problem:
        print(f"bansos-bot: {problem}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bansos-bot",
        description="Citizen service for DTSEN: social-aid status on Telegram and USSD.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the web server, the Telegram bot and the sandbox"
    )
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="serve with N processes on one port (Linux; default 1)",
    )
    # Given by `serve --workers N` to each of its workers alone.
    serve.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--sandbox-url", default=None, help=argparse.SUPPRESS)
    commands.add_parser("migrate", help="bring the database schema up to date")
    outbox = commands.add_parser(
        "outbox", help="deliver filings to the registry and follow their tickets (alone)"
    )
    what = outbox.add_mutually_exclusive_group()
    what.add_argument(
        "--status", action="store_true", help="print the queue's depth, age and dead letters"
    )
    what.add_argument("--retry-dead", action="store_true", help="send the dead letters again")
    notices = commands.add_parser("notices", help="quarterly status-change notices")
    notice_commands = notices.add_subparsers(dest="notices_command", required=True)
    run = notice_commands.add_parser("run", help="ingest one quarter's changes and send notices")
    run.add_argument("--quarter", required=True, type=_quarter, help="e.g. 2026Q4")
    notice_commands.add_parser("watch", help="run each new quarter once the registry publishes it")
    keys = commands.add_parser("keys", help="the keys that seal stored personal data")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    rotate = key_commands.add_parser(
        "rotate", help="seal everything under a new key and retire the old ones"
    )
    rotate.add_argument(
        "--settle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wait for running processes to take the new key (default: a few seconds)",
    )
    _facilitator_parser(commands)
    sandbox = commands.add_parser("sandbox-registry", help="run the sandbox registry alone")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=_port, default=8090)
    sandbox.add_argument("--households", type=int, default=10_000)
    sandbox.add_argument("--seed", type=int, default=42)
    return parser


def _serve(settings: Settings, arguments: argparse.Namespace) -> int:
    from bot.app import serve
    from bot.process_role import ProcessRole, stop_when_orphaned

    if arguments.worker_index is not None:
        # One worker of a group: its supervisor reads stdout, and prints the line itself.
        stop_when_orphaned()
        role = ProcessRole(arguments.worker_index, arguments.workers, arguments.sandbox_url)
        return _serve_until_stopped(lambda: serve(settings, role), complaints=sys.stdout)
    if arguments.workers > 1:
        from bot.process_group import run_group

        if not sys.platform.startswith("linux"):
            # Elsewhere SO_REUSEPORT gives every connection to one of the processes.
            print("bansos-bot: --workers needs Linux; run one process", file=sys.stderr)
            return 2
        if settings.http_port == 0:
            print("bansos-bot: --workers needs a fixed HTTP_PORT, not 0", file=sys.stderr)
            return 2
        return _serve_until_stopped(lambda: run_group(settings, arguments.workers))
    return _serve_until_stopped(lambda: serve(settings))


def _serve_until_stopped(
    run: Callable[[], Coroutine[Any, Any, int | None]], *, complaints: TextIO | None = None
) -> int:
    """Serve until a signal; a start that fails is one line on `complaints` (stderr)."""
    from sqlalchemy.exc import DBAPIError
    from telegram.error import InvalidToken

    from bot import event_loop
    from bot.app import SchemaOutOfDate

    complaints = complaints or sys.stderr
    try:
        return event_loop.run(run()) or 0
    except (SchemaOutOfDate, KeyFileBroken) as problem:
        print(f"bansos-bot: {problem}", file=complaints, flush=True)
        return 2
    except InvalidToken:
        print(
            "bansos-bot: Telegram refused TELEGRAM_BOT_TOKEN (invalid token)",
            file=complaints,
            flush=True,
        )
        return 2
    except (OSError, DBAPIError) as problem:
        # A port in use or a database that does not answer: say which, in one line.
        first_line = str(problem).splitlines()[0] if str(problem) else type(problem).__name__
        print(f"bansos-bot: cannot start: {first_line}", file=complaints, flush=True)
        return 1


def _migrate(settings: Settings, _arguments: argparse.Namespace) -> int:
    from bot.storage.database import open_database
    from bot.storage.migrate import upgrade_to_head

    async def run() -> None:
        database = open_database(settings.database_url)
        try:
            await upgrade_to_head(database)
        finally:
            await database.dispose()

    def work() -> None:
        asyncio.run(run())
        print("bansos-bot: database schema is up to date")

    return _in_one_line_on_failure(work)


def _sandbox(arguments: argparse.Namespace) -> int:
    import os

    from registry_client.sandbox import SANDBOX_TOKEN, run_sandbox_forever

    run_sandbox_forever(
        host=arguments.host,
        port=arguments.port,
        households=arguments.households,
        seed=arguments.seed,
        token=os.environ.get("REGISTRY_TOKEN", "").strip() or SANDBOX_TOKEN,
    )
    return 0


def _outbox(settings: Settings, arguments: argparse.Namespace) -> int:
    from bot.outbox_cli import retry_dead, run_outbox, show_status

    if settings.uses_sandbox and not (arguments.status or arguments.retry_dead):
        print(
            "bansos-bot: the outbox needs a registry: set REGISTRY_URL "
            "(`serve` runs its own worker against the in-process sandbox)",
            file=sys.stderr,
        )
        return 2

    def work() -> None:
        if arguments.status:
            print(asyncio.run(show_status(settings)))
        elif arguments.retry_dead:
            count = asyncio.run(retry_dead(settings))
            print(f"bansos-bot: {count} dead letter(s) queued again")
        else:
            asyncio.run(run_outbox(settings))

    return _in_one_line_on_failure(work)


def _workers(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            "the number of worker processes is a whole number, 1 or more"
        )
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError("a port is a number from 0 to 65535")
    return int(text)


def _quarter(text: str) -> str:
    if not re.fullmatch(r"[0-9]{4}Q[1-4]", text):
        raise argparse.ArgumentTypeError("a quarter looks like 2026Q4")
    return text


def _notices(settings: Settings, arguments: argparse.Namespace) -> int:
    from bot.notices_cli import run_quarter, watch

    if settings.uses_sandbox:
        print(
            "bansos-bot: notices need a registry: set REGISTRY_URL "
            "(`serve` watches the in-process sandbox itself)",
            file=sys.stderr,
        )
        return 2

    def work() -> None:
        if arguments.notices_command == "run":
            summary = asyncio.run(run_quarter(settings, arguments.quarter))
            print("\n".join(summary.lines()))
        else:
            asyncio.run(watch(settings))

    return _in_one_line_on_failure(work)


def _keys(settings: Settings, arguments: argparse.Namespace) -> int:
    from bot.app import SchemaOutOfDate
    from bot.crypto import KeyRing
    from bot.key_rotation import SETTLE_S, RotationBusy, RotationReport, rotate
    from bot.key_store import KeyFileBroken, KeyIdsExhausted
    from bot.storage.database import open_database
    from bot.storage.migrate import is_at_head

    async def run() -> RotationReport:
        database = open_database(settings.database_url)
        try:
            if not await is_at_head(database):
                stale = "the database schema is not up to date: run `bansos-bot migrate`"
                raise SchemaOutOfDate(stale)
            keys = KeyRing.load(settings.secret_key, settings.sealing_keys_file)
            settle = SETTLE_S if arguments.settle is None else max(0.0, arguments.settle)
            return await rotate(database, keys, settle_s=settle)
        finally:
            await database.dispose()

    reports: list[RotationReport] = []

    def work() -> None:
        reports.append(asyncio.run(run()))
        print("\n".join(reports[0].lines()))

    try:
        status = _in_one_line_on_failure(work)
    except (KeyFileBroken, KeyIdsExhausted, RotationBusy) as problem:
        print(f"bansos-bot: {problem}", file=sys.stderr)
        return 2
    # Old keys kept because some values did not move: not done, whatever was re-sealed.
    return 1 if reports and reports[0].kept else status


def _facilitator_parser(commands: Any) -> None:
    facilitator = commands.add_parser("facilitator", help="enrol and manage PKH facilitators")
    actions = facilitator.add_subparsers(dest="facilitator_command", required=True)
    add = actions.add_parser("add", help="enrol a facilitator; prints a one-time activation code")
    add.add_argument("--name", required=True)
    add.add_argument("--phone", required=True, help="e.g. 081234567890")
    add.add_argument("--area", required=True, help="kecamatan codes, e.g. 330201,330202")
    actions.add_parser("list", help="every facilitator, name and phone masked")
    for name, text in (
        ("deactivate", "take the facilitator menu away, from their next message on"),
        ("code", "a new activation code (the previous code and the linked chat stop working)"),
        ("audit", "what the facilitator did and when (NIKs as hashes)"),
    ):
        actions.add_parser(name, help=text).add_argument("--id", required=True)
    areas = actions.add_parser("areas", help="set the kecamatan a facilitator serves")
    areas.add_argument("--id", required=True)
    areas.add_argument("--set", required=True, dest="areas", help="e.g. 330201,330203")
    households = actions.add_parser(
        "households", help="the facilitator's households with their tickets (NIKs masked)"
    )
    households.add_argument("--id", required=True)
    households.add_argument("--csv", action="store_true", help="as CSV on stdout")


def _facilitator(settings: Settings, arguments: argparse.Namespace) -> int:
    from bot.facilitator_cli import run
    from bot.facilitators import FacilitatorError

    def work() -> None:
        print(asyncio.run(run(settings, arguments)))

    try:
        return _in_one_line_on_failure(work)
    except FacilitatorError as problem:
        print(f"bansos-bot: {problem}", file=sys.stderr)
        return 2


def _in_one_line_on_failure(work: Callable[[], None]) -> int:
    """Run a command; a schema out of date, a registry, port or database that does not
    answer is one line naming the cause, not a traceback."""
    from sqlalchemy.exc import DBAPIError

    from bot.app import SchemaOutOfDate
    from registry_client import RegistryError

    try:
        work()
    except SchemaOutOfDate as problem:
        print(f"bansos-bot: {problem}", file=sys.stderr)
        return 2
    except RegistryError as problem:
        print(f"bansos-bot: the registry did not answer: {problem}", file=sys.stderr)
        return 1
    except (OSError, DBAPIError) as problem:
        first_line = str(problem).splitlines()[0] if str(problem) else type(problem).__name__
        print(f"bansos-bot: cannot start: {first_line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
