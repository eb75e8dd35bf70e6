"""PKH facilitators on Telegram end to end: enrolled by the real command line, activated
in the chat, checking and filing for a household of their area through python-telegram-
bot and the Bot API fake, the filing in the sandbox's queue under their id, the stage
pushed back to them; and every refusal the issue names."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.app import Services, utc_now
from bot.storage.models import FacilitatorAccount, FacilitatorAuditEntry, Filing, Subscription
from registry_client.sandbox import RunningSandbox
from tests.conftest import TEST_SECRET_KEY
from tests.filing_factory import jpeg_photo
from tests.support.fake_telegram import FakeTelegram, running_fake_telegram
from tests.support.telegram_bot import App, Person
from tests.test_facilitators import run
from tests.test_filing_telegram_e2e import registry_moves
from tests.test_outbox import drain, queue, worker

FACILITATOR_CHAT = 7101
OTHER_CHAT = 7102
CITIZEN_CHAT = 7103


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram() as server:
        for chat in (FACILITATOR_CHAT, OTHER_CHAT, CITIZEN_CHAT):
            server.add_user(chat, first_name="Rina", language_code="en")
        yield server


async def text(reply: Awaitable[dict[str, Any]]) -> str:
    return str((await reply)["text"])


async def consented(fake: FakeTelegram, chat_id: int) -> Person:
    chat = Person(fake, chat_id)
    await chat.say("/start")
    await chat.tap("language")
    await chat.tap("en")
    await chat.tap("agree")
    return chat


def cli_env(services: Services) -> dict[str, str]:
    """The environment of an operator's shell on the same database and keys."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "DATABASE_", "REGISTRY_", "SEALING_", "BOT_"))
    }
    env.update(
        DATABASE_URL=services.settings.database_url,
        BOT_SECRET_KEY=TEST_SECRET_KEY,
        BOT_VAR_DIR=str(services.settings.var_dir),
    )
    return env


async def enrol(services: Services, area: str, phone: str = "081234567890") -> tuple[str, str]:
    """`bansos-bot facilitator add` as an operator runs it: the id and the one-time code."""
    status, out, err = await run(
        cli_env(services), "facilitator", "add", "--name", "Rina Wati", "--phone", phone,
        "--area", area,
    )  # fmt: skip
    assert status == 0, err
    enrolled = re.search(r"facilitator (F-\w{6}) enrolled", out)
    code = re.search(r"activation code: (\w{5}-\w{5})", out)
    assert enrolled is not None and code is not None
    return enrolled[1], code[1]


async def chat_commands(fake: FakeTelegram, chat_id: int, *, present: bool) -> list[str]:
    """The commands set for this chat alone, once they are (or are no longer) there: the
    bot changes them just after its reply."""
    scope = {"type": "chat", "chat_id": chat_id}
    for _ in range(250):
        if bool(fake.commands(scope)) == present:
            break
        await asyncio.sleep(0.02)
    return [command["command"] for command in fake.commands(scope)]


def other_area(nik: str) -> str:
    """The same NIK with another (real) kecamatan code."""
    return ("317101" if nik[:6] != "317101" else "327301") + nik[6:]


async def test_a_facilitator_checks_and_files_for_a_household_and_hears_its_stage(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    household = sandbox.population.sample(1)[0]
    recipient = household.nik
    area = recipient[:6]
    facilitator_id, code = await enrol(services, area)
    chat = await consented(fake, FACILITATOR_CHAT)

    activated = await text(chat.say(f"/pendamping {code.lower()}"))
    assert f"facilitator {facilitator_id}" in activated and area in activated
    assert "households" in chat.buttons()  # the facilitator's menu
    commands = await chat_commands(fake, FACILITATOR_CHAT, present=True)  # and their commands
    assert "households" in commands and "erase" not in commands  # the chat chose English

    # A check for a household of the area, with the facilitator's higher limits.
    await text(chat.tap("check"))
    outside = await text(chat.say(other_area(recipient)))
    assert "outside your areas" in outside  # refused, and the question stays
    assert "full name" in await text(chat.say(recipient))
    report = await text(chat.say(household.name))
    assert "decile" in report.lower() and household.name not in report

    # An objection about a recipient, with a photo and the location, for a household.
    await text(chat.say("/sanggah"))
    assert "person who objects" in await text(chat.tap("objection_other"))
    assert "outside your areas" in await text(chat.say(other_area(recipient)))
    await text(chat.say(area + "5708890003"))
    await text(chat.tap("nik"))
    await text(chat.say(recipient))
    assert "photos" in await text(chat.tap("owns_car"))
    assert "Photo 1 received" in await text(chat.photo(jpeg_photo(11)))
    assert "Location" in await text(chat.tap("done"))
    assert "shared" in await text(chat.location(-7.4201, 109.2345))
    done = await text(chat.tap("confirm"))
    ticket = done.split("ticket number is ")[1].split(".")[0]

    await drain(services, worker(services))
    (item,) = await queue(sandbox)
    document = item["submission"]
    assert document["filer"]["channel"] == "facilitator"
    assert document["filer"]["facilitator_id"] == facilitator_id
    assert document["subject"]["nik"] == recipient and len(item["photos"]) == 1
    assert document["fields"]["location"] == {"lat": -7.4201, "lon": 109.2345}

    # The registry moves the ticket: the facilitator is told, in their chat.
    await registry_moves(services, sandbox, bot_app, item["ticket"], "in_verification")
    told = [(await fake.next_reply(FACILITATOR_CHAT))["text"] for _ in range(2)]
    assert any(ticket in text and "checked in the field" in text for text in told), told

    # "My households": the household, masked, with its ticket at its stage.
    listed = await text(chat.say("/dampingan"))
    assert f"{recipient[:4]}********{recipient[-4:]}" in listed and recipient not in listed
    assert ticket in listed and "checked in the field" in listed

    # The household has no Telegram: its quarterly changes will come to the facilitator.
    await chat.say("/langganan")
    await chat.say(recipient)
    await chat.say(household.name)
    assert "/berhenti" in await text(chat.tap("yes"))
    async with services.database.transaction() as session:
        (subscription,) = (await session.scalars(select(Subscription))).all()
    assert subscription.facilitator_id == facilitator_id

    # The audit: what they did, about whom only as a keyed hash.
    async with services.database.transaction() as session:
        rows = (
            await session.scalars(
                select(FacilitatorAuditEntry).where(
                    FacilitatorAuditEntry.facilitator_id == facilitator_id
                )
            )
        ).all()
        filing = (await session.scalars(select(Filing))).one()
    actions = [row.action for row in rows]
    # Two look-ups: the check, and the one that confirms the subscription's name.
    assert (actions.count("lookup"), actions.count("filing"), actions.count("subscription")) == (
        2,
        1,
        1,
    )
    assert "activation" in actions
    nik_hash = services.keys.nik_hash(recipient)
    about = {row.nik_hash for row in rows if row.action in ("lookup", "filing", "subscription")}
    assert about == {nik_hash}
    assert filing.facilitator_id == facilitator_id
    status, out, _ = await run(cli_env(services), "facilitator", "audit", "--id", facilitator_id)
    assert status == 0 and "filing" in out and recipient not in out


async def test_codes_are_refused_when_reused_expired_or_of_a_deactivated_facilitator(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    area = sandbox.population.sample(1)[0].nik[:6]
    facilitator_id, code = await enrol(services, area)
    first = await consented(fake, FACILITATOR_CHAT)
    assert facilitator_id in await text(first.say(f"/pendamping {code}"))

    second = await consented(fake, OTHER_CHAT)
    assert "already been used" in await text(second.say(f"/pendamping {code}"))

    # A typing slip asks again; the right code then works.
    expiring_id, expiring = await enrol(services, area, phone="081234567891")
    assert "activation code" in await text(second.say("/pendamping"))
    assert "not right" in await text(second.say("AAAAA-AAAAA"))
    async with services.database.transaction() as session:
        await session.execute(
            update(FacilitatorAccount)
            .where(FacilitatorAccount.id == expiring_id)
            .values(code_expires_at=utc_now() - timedelta(minutes=1))
        )
    assert "expired" in await text(second.say(expiring))

    # Deactivated: the next message already gets the citizen's menu and refusals.
    await text(first.say("/cek"))
    status, _, err = await run(
        cli_env(services), "facilitator", "deactivate", "--id", facilitator_id
    )
    assert status == 0, err
    stopped = await text(first.say(area + "5708890003"))
    assert "facilitator access has changed" in stopped and "nothing was sent" in stopped
    assert "households" not in first.buttons()
    assert await chat_commands(fake, FACILITATOR_CHAT, present=False) == []  # the citizens'
    assert "facilitators only" in await text(first.say("/dampingan"))
    status, _, err = await run(cli_env(services), "facilitator", "code", "--id", facilitator_id)
    assert status == 2 and "deactivated" in err


async def test_a_citizen_cannot_use_facilitator_commands_or_guess_codes(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    area = sandbox.population.sample(1)[0].nik[:6]
    await enrol(services, area)
    citizen = await consented(fake, CITIZEN_CHAT)

    refused = await text(citizen.say("/dampingan"))
    assert "facilitators only" in refused and "/pendamping" in refused
    assert "households" not in citizen.buttons()
    wrong = [await text(citizen.say(f"/pendamping ZZZZZ-ZZZ{n}{n}")) for n in range(6)]
    assert all("not right" in text for text in wrong[:5])
    assert "Too many codes" in wrong[5]

    # A citizen's NIK is not bound to any area.
    await text(citizen.say("/cek"))
    assert "full name" in await text(citizen.say(other_area(sandbox.population.sample(1)[0].nik)))
