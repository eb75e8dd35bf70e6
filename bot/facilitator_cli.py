"""`bansos-bot facilitator …`: operators enrol PKH facilitators, give them activation
codes, change their areas, deactivate them, and read their audit and household list.

Names and phone numbers are printed masked; NIKs masked, or as the first eight hex digits
of their keyed hash in the audit. The activation code is printed once, when it is made.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import SchemaOutOfDate, utc_now
from bot.crypto import KeyRing
from bot.facilitator_service import FacilitatorService
from bot.facilitators import (
    CodeState,
    Facilitator,
    IssuedCode,
    in_wib,
    mask_name,
    mask_phone,
)
from bot.settings import Settings
from bot.storage.database import open_database
from bot.storage.migrate import is_at_head

PREFIX = "bansos-bot"
CSV_COLUMNS = ("nik", "added", "ticket", "kind", "stage", "registry_ticket", "filed")


async def run(settings: Settings, arguments: argparse.Namespace) -> str:
    """Run one `facilitator` subcommand in one transaction; the text to print.
    FacilitatorError (bad input, unknown id) goes to the caller, which prints one line."""
    commands: dict[str, Callable[[FacilitatorService, AsyncSession], Coroutine[Any, Any, str]]]
    commands = {
        "add": lambda service, session: _add(service, session, arguments),
        "list": _list,
        "deactivate": lambda service, session: _deactivate(service, session, arguments.id),
        "areas": lambda service, session: _areas(service, session, arguments),
        "code": lambda service, session: _code(service, session, arguments.id),
        "audit": lambda service, session: _audit(service, session, arguments.id),
        "households": lambda service, session: _households(service, session, arguments),
    }
    command = commands[arguments.facilitator_command]
    database = open_database(settings.database_url)
    try:
        # Alembic says at INFO which dialect it found: noise around a one-line answer.
        alembic = logging.getLogger("alembic")
        level = alembic.level
        alembic.setLevel(max(level, logging.WARNING))
        try:
            at_head = await is_at_head(database)
        finally:
            alembic.setLevel(level)
        if not at_head:
            raise SchemaOutOfDate("the database schema is not up to date: run `bansos-bot migrate`")
        keys = KeyRing.load(settings.secret_key, settings.sealing_keys_file)
        service = FacilitatorService(keys, clock=utc_now)
        async with database.transaction() as session:
            return await command(service, session)
    finally:
        await database.dispose()


async def _add(
    service: FacilitatorService, session: AsyncSession, arguments: argparse.Namespace
) -> str:
    facilitator, code = await service.enrol(
        session, arguments.name, arguments.phone, arguments.area
    )
    return "\n".join(
        [
            f"{PREFIX}: facilitator {facilitator.id} enrolled, "
            f"serving {', '.join(facilitator.areas)}",
            *_code_lines(facilitator.id, code),
        ]
    )


async def _list(service: FacilitatorService, session: AsyncSession) -> str:
    facilitators = await service.all(session)
    if not facilitators:
        return f"{PREFIX}: no facilitator is enrolled"
    return "\n".join(_list_line(facilitator) for facilitator in facilitators)


def _list_line(facilitator: Facilitator) -> str:
    code = facilitator.code.value if facilitator.active else "-"
    if (
        facilitator.active
        and facilitator.code is CodeState.PENDING
        and facilitator.code_expires_at is not None
    ):
        code += f" until {in_wib(facilitator.code_expires_at)}"
    return "  ".join(
        [
            facilitator.id,
            mask_name(facilitator.name),
            mask_phone(facilitator.phone),
            ",".join(facilitator.areas),
            "active" if facilitator.active else "inactive",
            f"linked: {'yes' if facilitator.linked else 'no'}",
            f"code: {code}",
        ]
    )


async def _deactivate(service: FacilitatorService, session: AsyncSession, given_id: str) -> str:
    facilitator = await service.get(session, given_id)
    if not await service.deactivate(session, facilitator.id):
        return f"{PREFIX}: facilitator {facilitator.id} was already inactive"
    return (
        f"{PREFIX}: facilitator {facilitator.id} deactivated; "
        "their chat loses the facilitator menu from its next message"
    )


async def _areas(
    service: FacilitatorService, session: AsyncSession, arguments: argparse.Namespace
) -> str:
    facilitator = await service.get(session, arguments.id)
    areas = await service.set_areas(session, facilitator.id, arguments.areas)
    return f"{PREFIX}: facilitator {facilitator.id} now serves {', '.join(areas)}"


async def _code(service: FacilitatorService, session: AsyncSession, given_id: str) -> str:
    facilitator = await service.get(session, given_id)
    code = await service.new_code(session, facilitator.id)
    return "\n".join(
        [
            f"{PREFIX}: new activation code for {facilitator.id}; the previous code and "
            "any linked chat no longer work",
            *_code_lines(facilitator.id, code),
        ]
    )


def _code_lines(facilitator_id: str, code: IssuedCode) -> list[str]:
    return [
        f"activation code: {code.code}",
        f"valid for one use until {in_wib(code.expires_at)}",
        "this code is shown once (only its hash is kept): give it to the facilitator now; "
        f"`bansos-bot facilitator code --id {facilitator_id}` makes a new one",
    ]


async def _audit(service: FacilitatorService, session: AsyncSession, given_id: str) -> str:
    entries = await service.audit(session, given_id)
    if not entries:
        return f"{PREFIX}: nothing recorded yet"
    return "\n".join(
        f"{in_wib(entry.at)}  {entry.action.value:<13}  "
        f"{'nik ' + entry.nik_hash[:8] if entry.nik_hash else '-'}"
        for entry in entries
    )


async def _households(
    service: FacilitatorService, session: AsyncSession, arguments: argparse.Namespace
) -> str:
    households = await service.households(session, arguments.id)
    rows: list[tuple[str, ...]] = []
    for household in households:
        added = in_wib(household.added_at)
        if not household.tickets:
            rows.append((household.masked_nik, added, "", "", "", "", ""))
        rows += [
            (
                household.masked_nik,
                added,
                ticket.ticket,
                ticket.kind,
                ticket.stage,
                ticket.registry_ticket or "",
                in_wib(ticket.filed_at),
            )
            for ticket in household.tickets
        ]
    if arguments.csv:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
        return text.getvalue().rstrip("\n")
    if not rows:
        return f"{PREFIX}: no household on this list yet"
    return "\n".join("  ".join(cell or "-" for cell in row) for row in rows)
