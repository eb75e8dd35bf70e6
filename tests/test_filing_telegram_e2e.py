"""Filings on Telegram end to end: python-telegram-bot polling the Bot API fake, photos
downloaded over HTTP, the outbox delivering to the sandbox, stages pushed back."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from bot.app import Services, utc_now
from bot.outbound import OutboundDispatcher
from handlers.telegram import (
    TelegramOutbound,
)
from registry_client.sandbox import RunningSandbox
from tests.filing_factory import jpeg_photo
from tests.support.fake_telegram import FakeTelegram, running_fake_telegram
from tests.support.telegram_bot import App, Person
from tests.test_outbox import drain, queue, sandbox_json, worker

CHAT = 5151


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram() as server:
        server.add_user(CHAT, first_name="Sri", language_code="en")
        yield server


async def consented(fake: FakeTelegram, chat_id: int = CHAT) -> Person:
    person = Person(fake, chat_id)
    await person.say("/start")
    await person.tap("language")
    await person.tap("en")
    await person.tap("agree")
    return person


async def registry_moves(
    services: Services, sandbox: RunningSandbox, bot_app: App, registry_ticket: str, stage: str
) -> None:
    """The sandbox registry moves a ticket; the follower sees it and the chat is told."""
    move = {"stage": stage, "reason_code": None}
    await sandbox_json(sandbox, "POST", f"/sandbox/tickets/{registry_ticket}/stage", json=move)
    await services.follower.follow_once()
    dispatcher = OutboundDispatcher(
        services.database,
        services.keys,
        {"telegram": TelegramOutbound(bot_app.bot)},
        clock=utc_now,
    )
    await dispatcher.dispatch_due()


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, (10, 120, 200, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def bomb_png(side: int = 30_000) -> bytes:
    """A tiny PNG whose header claims side × side pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (side + 1) * 16)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


async def test_a_proposal_with_photos_reaches_the_queue_and_its_stage_comes_back(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    person = await consented(fake)
    subject = "3302015708890003"
    assert "head of the household" in (await person.say("/usul"))["text"]
    assert "family card" in (await person.say(subject))["text"]
    assert "full name" in (await person.say(subject))["text"]
    await person.say("Sutarmi")
    programme = await person.say("Jl. Mawar 3, RT 02 RW 05, Sukamaju")
    assert "PKH" in person.buttons()
    assert "front of the house" in (await person.tap("PKH"))["text"]
    front, inside = jpeg_photo(1), jpeg_photo(2)
    assert "inside" in (await person.photo(front))["text"]
    assert "selfie" in (await person.photo(inside))["text"]
    assert "location of the house" in (await person.tap("skip"))["text"]
    review = await person.location(-7.4201, 109.2345)
    assert "3302********0003" in review["text"] and "1 photo" in review["text"]
    assert "shared" in review["text"]
    assert person.buttons() == ["confirm", "change", "discard"]
    done = await person.tap("confirm")
    ticket = done["text"].split("ticket number is ")[1].split(".")[0]
    assert ticket.startswith("BSB-") and "/tiket" in done["text"]
    assert programme  # the programme question came as buttons

    await drain(services, worker(services))
    items = await queue(sandbox)
    assert len(items) == 1
    sent = items[0]
    assert sent["kind"] == "proposal" and sent["submission"]["subject"]["nik"] == subject
    assert [p["role"] for p in sent["photos"]] == ["house_front", "house_inside"]
    assert sent["submission"]["fields"]["location"] == {"lat": -7.4201, "lon": 109.2345}
    for photo in sent["photos"]:  # byte-identical to what we stored
        assert services.blobs.exists(photo["sha256"])

    registry_ticket = sent["ticket"]
    await registry_moves(services, sandbox, bot_app, registry_ticket, "in_verification")
    received = (await fake.next_reply(CHAT))["text"]
    assert ticket in received and registry_ticket in received  # with the DTSEN number
    moved = (await fake.next_reply(CHAT))["text"]
    assert ticket in moved and "checked in the field" in moved and "OTP" in moved

    listed = await person.say("/tiket")
    assert ticket in listed["text"] and "checked in the field" in listed["text"]
    history = await person.tap(ticket)
    assert registry_ticket in history["text"] and "received by DTSEN" in history["text"]


async def test_an_objection_about_a_recipient_with_photo_and_location(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    recipient = sandbox.population.sample(1)[0]
    filer_nik = recipient.nik[:6] + "5708890003"
    elsewhere = ("3171" if recipient.nik[:4] != "3171" else "3273") + recipient.nik[4:]
    person = await consented(fake)
    await person.say("/sanggah")
    assert "own NIK" in (await person.tap("objection_other"))["text"]
    await person.say(filer_nik)
    await person.tap("nik")
    outside = await person.say(elsewhere)
    assert "same area" in outside["text"]  # refused, and the question stays
    await person.say(recipient.nik)
    assert "photos" in (await person.tap("owns_car"))["text"]
    first = await person.photo(jpeg_photo(5))
    assert "Photo 1 received (at most 3)" in first["text"] and "done" in person.buttons()
    again = await person.photo(jpeg_photo(5))
    assert "already sent this photo" in again["text"]
    asked_location = await person.tap("done")
    assert "Location" in asked_location["text"] and "skip" in person.buttons()
    text_instead = await person.say("di dekat masjid")
    assert "share a location" in text_instead["text"]
    review = await person.location(-7.4201, 109.2345)
    assert "shared" in review["text"]
    done = await person.tap("confirm")
    assert "ticket number" in done["text"]

    await drain(services, worker(services))
    (item,) = await queue(sandbox)
    document = item["submission"]
    assert document["kind"] == "objection" and document["reason_code"] == "owns_car"
    assert document["fields"]["location"] == {"lat": -7.4201, "lon": 109.2345}
    assert document["fields"]["filer_kecamatan"] == recipient.nik[:6]
    assert document["subject"]["nik"] == recipient.nik and len(item["photos"]) == 1


async def test_a_correction_with_a_document_sent_as_a_file(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    person = await consented(fake)
    member = sandbox.population.sample(1)[0]
    await person.say("/perbaiki")
    await person.say(member.nik)
    await person.say(member.name)
    await person.tap("member_died")
    asked_photo = await person.say("Bapak Sukirno, wafat 2 Oktober 2026")
    assert "supporting document" in asked_photo["text"]
    review = await person.document(png((900, 1200)), "akta-kematian.png", "image/png")
    assert "A member has died" in review["text"]
    await person.tap("confirm")
    await drain(services, worker(services))
    (item,) = await queue(sandbox)
    assert item["kind"] == "correction" and item["submission"]["reason_code"] == "member_died"
    assert [p["role"] for p in item["photos"]] == ["document"]


async def test_bad_files_and_inputs_get_reasons_and_keep_the_step(
    fake: FakeTelegram, bot_app: App, services: Services
) -> None:
    person = await consented(fake)
    await person.say("/usul")
    await person.say("3302015708890003")
    await person.say("3302015708890003")
    await person.say("Sutarmi")
    where = await person.location(-7.1, 110.2)  # a location where text is expected
    assert "do not need a location" in where["text"]
    await person.say("Jl. Mawar 3")
    await person.tap("PKH")
    pdf = await person.document(b"%PDF-1.4\n" + b"0" * 2000, "ktp.pdf", "application/pdf")
    assert "not a photo" in pdf["text"] and "front of the house" in pdf["text"]
    huge = await person.document(b"\xff\xd8\xff" + b"\0" * (30 * 1024 * 1024), "big.jpg",
                                 "image/jpeg")  # fmt: skip
    assert "too large" in huge["text"]
    truncated = await person.photo(jpeg_photo(3)[:3000])
    assert "could not be read" in truncated["text"]
    bomb = await person.document(bomb_png(), "bomb.png", "image/png")
    assert "far too large in pixels" in bomb["text"]
    typed = await person.say("ini fotonya")
    assert "send a photo" in typed["text"]
    sticker_like = await person.say("/unknowncommand")
    assert (
        "Unknown command" in sticker_like["text"] and "front of the house" in sticker_like["text"]
    )
    ok = await person.photo(jpeg_photo(4))
    assert "inside" in ok["text"]  # after all that, the form goes on where it was
