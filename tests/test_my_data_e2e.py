"""Data-subject rights end to end: /data_saya shows what is held, /hapus_data erases it
and leaves no row and no file that mentions the person; withdrawing consent on USSD
erases too."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from bot.app import Services
from bot.dialogs.status import SUBSCRIBE_TO_RESULT
from bot.storage.models import Base
from registry_client.sandbox import RunningSandbox
from tests.filing_factory import jpeg_photo
from tests.support.fake_telegram import FakeTelegram
from tests.support.telegram_bot import App
from tests.test_filing_telegram_e2e import CHAT, Person, consented, fake
from tests.test_outbox import drain, queue, worker
from tests.ussd_phone import UssdPhone

__all__ = ["fake"]  # the filing tests' fake Bot API, which knows their chat

# Counts of checks stay: they hold no data but a count, end within two days, and
# erasing them would reset the limits that stop enumeration (docs/SECURITY.md).
KEPT_FOR_ABUSE_LIMITS = {"admission_counters"}


async def rows_mentioning(services: Services, needles: list[str]) -> list[str]:
    """Every table row, as text, that contains any of `needles`."""
    found = []
    async with services.database.transaction() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in KEPT_FOR_ABUSE_LIMITS:
                continue
            for row in (await session.execute(text(f"SELECT * FROM {table.name}"))).all():
                dump = repr(tuple(row))
                found += [f"{table.name}: {n}" for n in needles if n in dump]
    return found


def blob_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


async def file_a_proposal(person: Person, subject: str, seed: int) -> str:
    await person.say("/usul")
    await person.say(subject)
    await person.say(subject)
    await person.say("Sutarmi")
    await person.say("Jl. Mawar 3, RT 02 RW 05, Sukamaju")
    await person.tap("PKH")
    await person.photo(jpeg_photo(seed))
    await person.photo(jpeg_photo(seed + 1))
    await person.tap("skip")  # the selfie
    await person.tap("skip")  # the location
    done = await person.tap("confirm")
    return str(done["text"].split("ticket number is ")[1].split(".")[0])


async def test_my_data_then_erasure_leaves_nothing_that_mentions_the_person(
    fake: FakeTelegram, bot_app: App, services: Services, sandbox: RunningSandbox
) -> None:
    household = sandbox.population.sample(1)[0]
    person = await consented(fake)
    await person.say(household.nik)
    found = await person.say(household.name)
    assert SUBSCRIBE_TO_RESULT in person.buttons(), found["text"]
    subscribed = await person.tap(SUBSCRIBE_TO_RESULT)
    assert "notif" in subscribed["text"].lower() or "message" in subscribed["text"].lower()
    subject = "3302015708890003"
    delivered = await file_a_proposal(person, subject, seed=10)
    await drain(services, worker(services))
    assert len(await queue(sandbox)) == 1
    waiting = await file_a_proposal(person, "3302016508890004", seed=20)  # not yet sent
    await person.say("/usul")  # a third one begun, with a photo, never confirmed
    for answer in (subject, subject, "Sutarmi", "Jl. Melati 1"):
        await person.say(answer)
    await person.tap("PKH")
    await person.photo(jpeg_photo(30))
    assert len(blob_files(services.settings.blob_dir)) == 5

    held = (await person.say("/data_saya"))["text"]
    assert "2 tickets" in held and delivered in held and waiting in held
    assert "4 photos" in held
    assert f"{household.nik[:4]}********{household.nik[-4:]}" in held
    assert "1 household you checked with the right name" in held
    assert household.nik not in held and household.name not in held

    confirm = await person.tap("erase")
    assert "cannot be undone" in confirm["text"] and "stay with DTSEN" in confirm["text"]
    done = await person.tap("erase_yes")
    assert "filings 2, photos 5, change notices 1, messages 1" in done["text"]
    assert "171" in done["text"]

    keys = services.keys
    needles = [
        keys.address_hash("telegram", str(CHAT)),
        keys.nik_hash(household.nik),
        keys.nik_hash(subject),
        delivered,
        waiting,
    ]
    assert await rows_mentioning(services, needles) == []
    assert blob_files(services.settings.blob_dir) == []
    # The registry keeps what it received; the withdrawn filing never goes out.
    await drain(services, worker(services))
    assert len(await queue(sandbox)) == 1
    await person.say("/start")
    assert "agree" in person.buttons()  # even the consent is gone: asked again


async def test_erasure_can_be_declined_and_changes_nothing(
    fake: FakeTelegram, bot_app: App, services: Services
) -> None:
    person = await consented(fake)
    await person.say("/hapus_data")
    await person.tap("keep")
    assert "agree" not in person.buttons()
    assert await rows_mentioning(services, [services.keys.address_hash("telegram", str(CHAT))])


async def test_withdrawing_consent_on_ussd_erases_and_every_screen_fits(
    phone: UssdPhone, services: Services, sandbox: RunningSandbox
) -> None:
    household = sandbox.population.sample(1)[0]
    screens = [await phone.check_status(household.nik, household.name)]
    screens.append(await phone.dial())
    screens.append(await phone.answer("8"))  # privacy
    screens.append(await phone.answer("2"))  # what we keep: one line per screen
    for _ in range(5):
        screens.append(await phone.answer("1"))  # more
    assert "Kembali" in screens[-1] and "Lagi" not in screens[-1]
    screens.append(await phone.answer("1"))  # back to the privacy screen
    screens.append(await phone.dial())
    screens.append(await phone.answer("8"))
    screens.append(await phone.answer("3"))  # see my data
    assert "1" in screens[-1]
    screens.append(await phone.answer("1"))  # erase
    screens.append(await phone.answer("1"))  # yes
    assert all(len(screen[4:]) <= 160 for screen in screens), screens
    assert screens[-1].startswith("END ") and "171" in screens[-1]
    address = services.keys.address_hash("ussd", "+628123456789")
    assert await rows_mentioning(services, [address, services.keys.nik_hash(household.nik)]) == []
    fresh = await phone.dial()
    assert "1 Setuju" in fresh  # asked for consent again
