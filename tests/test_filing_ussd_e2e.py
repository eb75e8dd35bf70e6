"""Filings from a feature phone through POST /ussd: an objection to one's own status and a
correction without photos, each ending with a ticket number; the stage comes back at the
next dial."""

from __future__ import annotations

import re

from bot.app import Services
from registry_client.sandbox import RunningSandbox
from tests.test_outbox import drain, queue, sandbox_json, worker
from tests.ussd_phone import UssdPhone

TICKET = re.compile(r"BSB-[0-9A-Z]{8}")


async def english_and_consent(phone: UssdPhone) -> None:
    await phone.dial()
    await phone.answer("3")  # Bahasa/Language
    await phone.answer("2")  # English
    await phone.answer("1")  # agree


async def test_objection_to_own_status_ends_with_a_ticket_and_reaches_the_queue(
    phone: UssdPhone, services: Services, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    await english_and_consent(phone)
    menu = await phone.dial()
    assert "2 Object to my status" in menu and "Propose" not in menu  # no photos here
    await phone.answer("2")
    await phone.answer(person.nik)
    reasons = await phone.answer(person.name)
    assert reasons.startswith("CON ") and "1 My welfare level" in reasons
    await phone.answer("2")  # my aid stopped
    review = await phone.answer("Bantuan PKH berhenti sejak Juli padahal kami masih miskin")
    assert review.startswith("CON ") and "1 Send" in review and len(review) - 4 <= 160
    done = await phone.answer("1")
    assert done.startswith("END ") and len(done) - 4 <= 160
    ticket = TICKET.search(done)
    assert ticket is not None

    await drain(services, worker(services))
    (item,) = await queue(sandbox)
    assert item["submission"]["filer"]["channel"] == "ussd"
    assert item["submission"]["reason_code"] == "aid_stopped"
    assert item["submission"]["subject"]["nik"] == person.nik

    move = {"stage": "in_verification", "reason_code": None}
    await sandbox_json(sandbox, "POST", f"/sandbox/tickets/{item['ticket']}/stage", json=move)
    await services.follower.follow_once()
    await services.outbound.dispatch_due()  # USSD cannot push: held for the next dial
    received = await phone.dial()  # one message per dial, oldest first: it fits a screen
    assert received.startswith("CON ") and ticket.group() in received
    assert "received by DTSEN" in received and len(received) - 4 <= 160
    assert "1 Menu" in received
    menu_again = await phone.answer("1")
    assert "1 Check aid status" in menu_again
    moved = await phone.dial()
    assert ticket.group() in moved and "checked in the field" in moved
    later = await phone.dial()
    assert ticket.group() not in later  # each shown once


async def test_a_correction_without_photo_and_the_ticket_list(
    phone: UssdPhone, services: Services, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1)[0]
    await english_and_consent(phone)
    await phone.dial()
    await phone.answer("3")  # correct data
    await phone.answer(person.nik)
    choices = await phone.answer(person.name)
    assert "1 Address" in choices and "died" not in choices  # corrections needing a photo
    await phone.answer("1")
    await phone.answer("Jl. Melati 7 RT 01 RW 03 Desa Karanganyar")
    done = await phone.answer("1")
    ticket = TICKET.search(done)
    assert done.startswith("END ") and ticket is not None
    await phone.dial()
    listed = await phone.answer("4")  # my tickets
    assert f"1 {ticket.group()}" in listed
    history = await phone.answer("1")
    assert ticket.group() in history and len(history) - 4 <= 160


async def test_a_step_needing_a_photo_is_never_reached_and_bad_answers_keep_the_step(
    phone: UssdPhone, sandbox: RunningSandbox
) -> None:
    await english_and_consent(phone)
    await phone.dial()
    await phone.answer("3")
    wrong = await phone.answer("12345")
    assert wrong.startswith("CON ") and "16" in wrong
    await phone.answer(sandbox.population.sample(1)[0].nik)
    await phone.answer("Siti Aminah")
    out_of_range = await phone.answer("99")
    assert out_of_range.startswith("CON ") and "1 Address" in out_of_range
