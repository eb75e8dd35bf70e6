"""PKH facilitators, operator side: enrolment with a one-time code kept only as a hash,
activation once and in time, deactivation at the next message, areas by kecamatan, an
audit and a household list that never hold a NIK, and `bansos-bot facilitator …`."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from bot import key_rotation
from bot.cli import main
from bot.crypto import KeyRing
from bot.facilitator_service import FacilitatorService
from bot.facilitators import (
    CODE_VALIDITY,
    Action,
    ActivationRefusal,
    ActivationRefused,
    BadAreas,
    BadPhone,
    CodeState,
    Facilitator,
    FacilitatorInactive,
    HouseholdOutcome,
    PhoneAlreadyEnrolled,
    UnknownFacilitator,
    in_area,
    mask_name,
    mask_phone,
    new_activation_code,
    normalize_code,
    parse_areas,
)
from bot.filing_service import FilingService
from bot.filings import AreaRule, Filer
from bot.storage.database import Database, open_database
from bot.storage.models import FacilitatorAccount, FacilitatorHousehold
from tests.conftest import TEST_SECRET_KEY
from tests.filing_factory import objection

NAME = "Siti Aminah"
PHONE = "081234567890"
PHONE_E164 = "+6281234567890"
NIK_330201 = "3302015708890003"
OTHER_NIK_330201 = "3302016112910004"
NIK_330202 = "3302025708890003"
NIK_JAKARTA = "3174094101850007"
CHAT = "chat-hash-" + "a" * 54
OTHER_CHAT = "chat-hash-" + "b" * 54
BANSOS_BOT = [sys.executable, "-c", "from bot.cli import main; raise SystemExit(main())"]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def nothing_personal_in_the_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The conftest's check needs the sandbox: these tests' own people, checked here."""
    caplog.set_level(logging.DEBUG)
    yield
    personal = (NAME, PHONE, PHONE_E164, NIK_330201, OTHER_NIK_330201, NIK_330202, NIK_JAKARTA)
    assert [value for value in personal if value in caplog.text] == []


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing.from_secret(TEST_SECRET_KEY)


@pytest.fixture
def service(keys: KeyRing, clock: Clock) -> FacilitatorService:
    return FacilitatorService(keys, clock=clock)


async def enrol(
    database: Database,
    service: FacilitatorService,
    phone: str = PHONE,
    areas: str = "330201,330202",
) -> tuple[Facilitator, str]:
    async with database.transaction() as session:
        facilitator, issued = await service.enrol(session, NAME, phone, areas)
    return facilitator, issued.code


async def activate(
    database: Database, service: FacilitatorService, code: str, chat: str = CHAT
) -> Facilitator | ActivationRefused:
    async with database.transaction() as session:
        return await service.activate(session, code, chat)


async def for_chat(
    database: Database, service: FacilitatorService, chat: str = CHAT
) -> Facilitator | None:
    async with database.transaction() as session:
        return await service.facilitator_for_chat(session, chat)


async def every_stored_value(database: Database) -> str:
    """Every value of the facilitator tables, as text (bytes as latin-1)."""
    seen = []
    async with database.transaction() as session:
        for table in ("facilitators", "facilitator_areas", "facilitator_households"):
            for row in (await session.execute(text(f"SELECT * FROM {table}"))).all():
                for value in row:
                    seen.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
        for row in (await session.execute(text("SELECT * FROM facilitator_audit"))).all():
            seen += [str(value) for value in row]
    return "\n".join(seen)


def refused(reason: ActivationRefusal) -> ActivationRefused:
    return ActivationRefused(reason)


# --- pure rules -------------------------------------------------------------------


def test_codes_are_unambiguous_and_typed_any_way() -> None:
    code = new_activation_code()
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}", code)
    compact = code.replace("-", "")
    assert normalize_code(code) == compact
    assert normalize_code(f" {code.lower()[:5]} {code.lower()[6:]} ") == compact
    assert normalize_code("ABCDE FGHJK") == "ABCDEFGHJK"
    assert normalize_code("oi1l0-ABCDE") == "01110ABCDE"  # O, I and L read as 0 and 1
    assert normalize_code("ABCDE-FGHJ") is None
    assert normalize_code("ABCDE-FGHJU") is None
    assert normalize_code("") is None


def test_areas_are_six_digit_kecamatan_codes_that_exist() -> None:
    assert parse_areas("330202,330201") == ("330201", "330202")
    assert parse_areas(" 33.02.01 ; 330202 330201 ") == ("330201", "330202")
    assert parse_areas(["330201", "317409"]) == ("317409", "330201")
    with pytest.raises(BadAreas, match="unknown kecamatan code 339999"):
        parse_areas("330201,339999")
    with pytest.raises(BadAreas, match="6 digits"):
        parse_areas("3302")
    with pytest.raises(BadAreas, match="at least one"):
        parse_areas(" , ")


def test_in_area_goes_by_the_niks_kecamatan() -> None:
    areas = ("330201", "317409")
    assert in_area(NIK_330201, areas)
    assert in_area("3302 0157 0889 0003", areas)
    assert in_area(NIK_JAKARTA, areas)
    assert not in_area(NIK_330202, areas)
    assert not in_area("not a nik", areas)
    assert not in_area(NIK_330201, ())


def test_names_and_phones_are_masked_for_operators() -> None:
    assert mask_name(NAME) == "S*** A*****"
    assert mask_phone(PHONE_E164) == "+62812****7890"


# --- service on both databases ----------------------------------------------------


async def test_enrolment_keeps_the_code_only_as_a_hash_and_seals_name_and_phone(
    database: Database, service: FacilitatorService, database_url: str
) -> None:
    facilitator, code = await enrol(database, service)

    assert re.fullmatch(r"F-[0-9A-HJKMNP-TV-Z]{6}", facilitator.id)
    assert (facilitator.name, facilitator.phone) == (NAME, PHONE_E164)
    assert facilitator.areas == ("330201", "330202")
    assert (facilitator.active, facilitator.linked, facilitator.code) == (
        True,
        False,
        CodeState.PENDING,
    )
    assert NAME not in repr(facilitator) and PHONE_E164 not in repr(facilitator)
    stored = await every_stored_value(database)
    for secret in (code, code.replace("-", ""), NAME, "Siti", "Aminah", PHONE, PHONE_E164):
        assert secret not in stored
    if database_url.startswith("sqlite"):
        await database.dispose()
        raw = await asyncio.to_thread(Path(database_url.split("///", 1)[1]).read_bytes)
        for secret in (code, code.replace("-", ""), NAME, PHONE, PHONE_E164):
            assert secret.encode() not in raw


async def test_a_phone_is_enrolled_once_however_it_is_written(
    database: Database, service: FacilitatorService
) -> None:
    facilitator, _ = await enrol(database, service)
    with pytest.raises(PhoneAlreadyEnrolled, match=facilitator.id):
        await enrol(database, service, phone="+62 812-3456-7890")
    with pytest.raises(BadPhone):
        await enrol(database, service, phone="12")
    with pytest.raises(BadAreas):
        await enrol(database, service, phone="081299990000", areas="339999")
    async with database.transaction() as session:
        assert len(await service.all(session)) == 1


async def test_a_code_links_one_chat_once(database: Database, service: FacilitatorService) -> None:
    enrolled, code = await enrol(database, service)

    typed = f"  {code.lower().replace('-', ' ')} "
    linked = await activate(database, service, typed)

    assert isinstance(linked, Facilitator)
    assert (linked.id, linked.linked, linked.code) == (enrolled.id, True, CodeState.USED)
    assert await activate(database, service, code) == refused(ActivationRefusal.ALREADY_USED)
    assert await activate(database, service, code, OTHER_CHAT) == refused(
        ActivationRefusal.ALREADY_USED
    )
    assert await activate(database, service, "ZZZZZ-ZZZZZ") == refused(
        ActivationRefusal.UNKNOWN_CODE
    )
    assert await activate(database, service, "hello") == refused(ActivationRefusal.UNKNOWN_CODE)
    found = await for_chat(database, service)
    assert found is not None and found.id == enrolled.id
    assert await for_chat(database, service, OTHER_CHAT) is None


async def test_two_chats_racing_for_one_code_link_one(
    database: Database, service: FacilitatorService
) -> None:
    _, code = await enrol(database, service)

    outcomes = await asyncio.gather(
        *(activate(database, service, code, f"chat-{n}") for n in range(4)),
        return_exceptions=True,
    )

    assert sum(isinstance(outcome, Facilitator) for outcome in outcomes) == 1
    # The others are refused; on SQLite a writer may also be told the database is busy.
    assert all(
        isinstance(outcome, (Facilitator, ActivationRefused, Exception)) for outcome in outcomes
    )


async def test_an_expired_code_is_refused(
    database: Database, service: FacilitatorService, clock: Clock
) -> None:
    _, late = await enrol(database, service)
    _, in_time = await enrol(database, service, phone="081299990000")

    clock.now += CODE_VALIDITY - timedelta(seconds=1)
    assert isinstance(await activate(database, service, in_time, OTHER_CHAT), Facilitator)
    clock.now += timedelta(seconds=1)
    assert await activate(database, service, late) == refused(ActivationRefusal.EXPIRED)
    async with database.transaction() as session:
        listed = {f.code for f in await service.all(session)}
    assert listed == {CodeState.EXPIRED, CodeState.USED}


async def test_deactivation_takes_effect_on_the_next_message(
    database: Database, service: FacilitatorService
) -> None:
    facilitator, code = await enrol(database, service)
    other, other_code = await enrol(database, service, phone="081299990000")
    assert isinstance(await activate(database, service, code), Facilitator)
    assert await for_chat(database, service) is not None

    async with database.transaction() as session:
        assert await service.deactivate(session, facilitator.id)
        assert await service.deactivate(session, other.id)

    assert await for_chat(database, service) is None
    assert await activate(database, service, other_code, OTHER_CHAT) == refused(
        ActivationRefusal.DEACTIVATED
    )
    async with database.transaction() as session:
        assert not await service.deactivate(session, facilitator.id)
        with pytest.raises(FacilitatorInactive):
            await service.new_code(session, facilitator.id)
        with pytest.raises(FacilitatorInactive):
            await service.add_household(session, facilitator.id, NIK_330201)


async def test_someone_deactivated_is_enrolled_again_with_the_same_phone_and_chat(
    database: Database, service: FacilitatorService
) -> None:
    before, code = await enrol(database, service)
    assert isinstance(await activate(database, service, code), Facilitator)
    async with database.transaction() as session:
        await service.deactivate(session, before.id)

    again, new_code = await enrol(database, service)
    linked = await activate(database, service, new_code)

    assert isinstance(linked, Facilitator) and linked.id == again.id != before.id
    found = await for_chat(database, service)
    assert found is not None and found.id == again.id
    async with database.transaction() as session:
        old = await service.get(session, before.id)
        assert (old.active, old.linked, old.phone) == (False, False, PHONE_E164)
    with pytest.raises(PhoneAlreadyEnrolled, match=again.id):
        await enrol(database, service)


async def test_a_chat_linked_to_one_facilitator_cannot_take_another(
    database: Database, service: FacilitatorService
) -> None:
    first, first_code = await enrol(database, service)
    second, second_code = await enrol(database, service, phone="081299990000")
    assert isinstance(await activate(database, service, first_code), Facilitator)

    assert await activate(database, service, second_code) == refused(
        ActivationRefusal.CHAT_LINKED_ELSEWHERE
    )

    # The refusal did not spend the code: the second facilitator's own chat still can.
    linked = await activate(database, service, second_code, OTHER_CHAT)
    assert isinstance(linked, Facilitator) and linked.id == second.id
    found = await for_chat(database, service)
    assert found is not None and found.id == first.id


async def test_a_new_code_replaces_the_old_one_and_unlinks_the_chat(
    database: Database, service: FacilitatorService
) -> None:
    facilitator, old = await enrol(database, service)
    assert isinstance(await activate(database, service, old), Facilitator)

    async with database.transaction() as session:
        new = await service.new_code(session, facilitator.id.lower())

    assert new.code not in repr(new)
    assert await for_chat(database, service) is None
    assert await activate(database, service, old) == refused(ActivationRefusal.UNKNOWN_CODE)
    assert isinstance(await activate(database, service, new.code, OTHER_CHAT), Facilitator)
    found = await for_chat(database, service, OTHER_CHAT)
    assert found is not None and found.id == facilitator.id


async def test_areas_are_validated_and_changed(
    database: Database, service: FacilitatorService
) -> None:
    facilitator, _ = await enrol(database, service, areas="330201")

    async with database.transaction() as session:
        with pytest.raises(BadAreas):
            await service.set_areas(session, facilitator.id, "330201,999999")
        assert await service.set_areas(session, facilitator.id, "330202, 317409") == (
            "317409",
            "330202",
        )
        with pytest.raises(UnknownFacilitator):
            await service.set_areas(session, "F-NOSUCH", "330201")

    async with database.transaction() as session:
        changed = await service.get(session, facilitator.id)
        assert changed.areas == ("317409", "330202")
        assert changed.serves(NIK_330202) and changed.serves(NIK_JAKARTA)
        assert not changed.serves(NIK_330201)
        assert [entry.action for entry in await service.audit(session, facilitator.id)] == [
            Action.ENROLMENT,
            Action.AREAS_CHANGED,
        ]


async def test_households_outside_the_area_are_refused(
    database: Database, service: FacilitatorService
) -> None:
    facilitator, _ = await enrol(database, service, areas="330201")

    async with database.transaction() as session:
        add = service.add_household
        assert await add(session, facilitator.id, NIK_330201) is HouseholdOutcome.ADDED
        assert await add(session, facilitator.id, NIK_330201) is HouseholdOutcome.ALREADY_LISTED
        assert await add(session, facilitator.id, NIK_330202) is HouseholdOutcome.OUTSIDE_AREA
        assert await add(session, facilitator.id, "12345") is HouseholdOutcome.NOT_A_NIK

    async with database.transaction() as session:
        listed = await service.households(session, facilitator.id)
    assert [household.masked_nik for household in listed] == ["3302********0003"]


async def test_audit_and_households_hold_no_nik_and_list_the_facilitators_tickets(
    database: Database, service: FacilitatorService, keys: KeyRing, clock: Clock
) -> None:
    facilitator, code = await enrol(database, service, areas="330201")
    assert isinstance(await activate(database, service, code), Facilitator)
    filings = FilingService(keys, filings_per_day=10, area_rule=AreaRule.OFF, clock=clock)
    own_chat = Filer("telegram", "70001", CHAT, facilitator_id=facilitator.id)
    stranger = Filer("telegram", "70002", OTHER_CHAT)
    async with database.transaction() as session:
        for nik in (NIK_330201, OTHER_NIK_330201):
            assert await service.add_household(session, facilitator.id, nik) is (
                HouseholdOutcome.ADDED
            )
        await service.record(session, facilitator.id, Action.LOOKUP, NIK_330201)
        filed = await filings.submit(session, own_chat, objection(NIK_330201))
        await service.record(session, facilitator.id, Action.FILING, NIK_330201)
        await filings.submit(session, stranger, objection(NIK_330201))

    async with database.transaction() as session:
        audit = await service.audit(session, facilitator.id)
        households = await service.households(session, facilitator.id)

    assert [(entry.action, entry.nik_hash) for entry in audit] == [
        (Action.ENROLMENT, None),
        (Action.ACTIVATION, None),
        (Action.LOOKUP, keys.nik_hash(NIK_330201)),
        (Action.FILING, keys.nik_hash(NIK_330201)),
    ]
    stored = await every_stored_value(database)
    assert NIK_330201 not in stored and OTHER_NIK_330201 not in stored
    by_nik = {household.masked_nik: household for household in households}
    assert set(by_nik) == {"3302********0003", "3302********0004"}
    tickets = by_nik["3302********0003"].tickets
    assert [(t.ticket, t.stage) for t in tickets] == [(getattr(filed, "ticket", None), "queued")]
    assert by_nik["3302********0004"].tickets == ()


async def test_rotation_reseals_facilitator_names_phones_and_households(
    database: Database, tmp_path: Path, clock: Clock
) -> None:
    keys_file = tmp_path / "var" / "sealing-keys.json"
    keys = KeyRing.load(TEST_SECRET_KEY, keys_file, reload_interval_s=0.0)
    service = FacilitatorService(keys, clock=clock)
    facilitator, _ = await enrol(database, service, areas="330201")
    async with database.transaction() as session:
        await service.add_household(session, facilitator.id, NIK_330201)

    report = await key_rotation.rotate(database, keys, settle_s=0)

    assert report.tables["facilitators"].resealed == 2
    assert report.tables["facilitator_households"].resealed == 1
    async with database.transaction() as session:
        account = (await session.scalars(select(FacilitatorAccount))).one()
        household = (await session.scalars(select(FacilitatorHousehold))).one()
        assert {account.sealed_name[0], account.sealed_phone[0], household.sealed_nik[0]} == {2}
        opened = await service.get(session, facilitator.id)
        assert (opened.name, opened.phone) == (NAME, PHONE_E164)
        assert [h.masked_nik for h in await service.households(session, facilitator.id)] == [
            "3302********0003"
        ]


# --- the command line --------------------------------------------------------------


def bansos_bot(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], list[str]]:
    capsys.readouterr()
    status = main(["facilitator", *args])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


def test_operators_enrol_list_change_and_deactivate_from_the_command_line(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = bansos_bot(
        capsys, "add", "--name", NAME, "--phone", PHONE, "--area", "330201,330202"
    )

    assert status == 0
    enrolled = re.fullmatch(r"bansos-bot: facilitator (F-\w{6}) enrolled, serving (.*)", out[0])
    assert enrolled is not None and enrolled[2] == "330201, 330202"
    facilitator_id = enrolled[1]
    code = re.fullmatch(r"activation code: (\w{5}-\w{5})", out[1])
    assert code is not None
    assert re.fullmatch(r"valid for one use until 2\d{3}-\d\d-\d\d \d\d:\d\d WIB", out[2])
    assert "shown once" in out[3]

    status, out, _ = bansos_bot(capsys, "list")
    assert status == 0
    assert out == [
        f"{facilitator_id}  S*** A*****  +62812****7890  330201,330202  active  linked: no  "
        f"code: pending until {out[0].rsplit('until ', 1)[1]}"
    ]
    assert code[1] not in "\n".join(out)

    status, out, _ = bansos_bot(capsys, "areas", "--id", facilitator_id, "--set", "330201,330203")
    assert (status, out) == (
        0,
        [f"bansos-bot: facilitator {facilitator_id} now serves 330201, 330203"],
    )

    status, out, _ = bansos_bot(capsys, "code", "--id", facilitator_id)
    assert (
        status == 0
        and out[1].startswith("activation code: ")
        and out[1] != f"activation code: {code[1]}"
    )

    status, out, _ = bansos_bot(capsys, "deactivate", "--id", facilitator_id.lower())
    assert status == 0 and "deactivated" in out[0]
    status, out, _ = bansos_bot(capsys, "list")
    assert "  inactive  linked: no  code: -" in out[0]

    status, out, _ = bansos_bot(capsys, "audit", "--id", facilitator_id)
    assert status == 0
    assert [line.split()[3] for line in out] == [
        "enrolment",
        "areas_changed",
        "code_issued",
        "deactivation",
    ]


def test_the_households_csv_masks_niks_and_lists_tickets(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = KeyRing.from_secret(TEST_SECRET_KEY)
    ticket = asyncio.run(_seed_households(cli_env, keys))
    facilitator_id, filed = ticket

    status, out, _ = bansos_bot(capsys, "households", "--id", facilitator_id, "--csv")

    assert status == 0
    rows = list(csv.DictReader(io.StringIO("\n".join(out))))
    assert [(r["nik"], r["ticket"], r["stage"]) for r in rows] == [
        ("3302********0003", filed, "queued"),
        ("3302********0004", "", ""),
    ]
    assert NIK_330201 not in "\n".join(out) and OTHER_NIK_330201 not in "\n".join(out)

    status, out, _ = bansos_bot(capsys, "audit", "--id", facilitator_id)
    assert out[-1].split()[-2:] == ["nik", keys.nik_hash(NIK_330201)[:8]]
    assert NIK_330201 not in "\n".join(out)


async def _seed_households(url: str, keys: KeyRing) -> tuple[str, str]:
    database = open_database(url)
    clock = Clock()
    service = FacilitatorService(keys, clock=clock)
    filings = FilingService(keys, filings_per_day=10, area_rule=AreaRule.OFF, clock=clock)
    try:
        facilitator, code = await enrol(database, service, areas="330201")
        assert isinstance(await activate(database, service, code), Facilitator)
        async with database.transaction() as session:
            await service.add_household(session, facilitator.id, NIK_330201)
            clock.now += timedelta(minutes=1)
            await service.add_household(session, facilitator.id, OTHER_NIK_330201)
            filed = await filings.submit(
                session, Filer("telegram", "70001", CHAT), objection(NIK_330201)
            )
            await service.record(session, facilitator.id, Action.FILING, NIK_330201)
    finally:
        await database.dispose()
    ticket = getattr(filed, "ticket", None)
    assert isinstance(ticket, str)
    return facilitator.id, ticket


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "--name", NAME, "--phone", "12", "--area", "330201"], "not a phone number"),
        (["add", "--name", NAME, "--phone", PHONE, "--area", "339999"], "unknown kecamatan"),
        (["add", "--name", " ", "--phone", PHONE, "--area", "330201"], "a name is"),
        (["deactivate", "--id", "F-NOSUCH"], "no facilitator has the id"),
        (["areas", "--id", "F-NOSUCH", "--set", "330201"], "no facilitator has the id"),
        (["households", "--id", "F-NOSUCH", "--csv"], "no facilitator has the id"),
    ],
)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_input_is_one_line_and_exit_2(
    cli_env: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    status, out, err = bansos_bot(capsys, *args)

    assert (status, out, len(err)) == (2, [], 1)
    assert err[0].startswith("bansos-bot: ") and message in err[0]


async def test_the_real_command_prints_the_code_once_and_refuses_a_second_enrolment(
    tmp_path: Path,
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "DATABASE_", "REGISTRY_", "SEALING_", "BOT_"))
    }
    db_file = tmp_path / "bot.sqlite3"
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{db_file}",
        BOT_SECRET_KEY=TEST_SECRET_KEY,
        BOT_VAR_DIR=str(tmp_path / "var"),
    )
    add = ["facilitator", "add", "--name", NAME, "--phone", PHONE, "--area", "330201"]

    assert (await run(env, "migrate"))[0] == 0
    status, out, err = await run(env, *add)
    assert status == 0, err
    code = re.search(r"activation code: (\w{5}-\w{5})", out)
    assert code is not None and out.count(code[1]) == 1
    status, out, err = await run(env, *add)

    assert (status, out) == (2, "")
    assert err.splitlines() == [
        "bansos-bot: this phone number is already enrolled, as " + re.findall(r"F-\w{6}", err)[0]
    ]
    raw = await asyncio.to_thread(db_file.read_bytes)
    for secret in (code[1], code[1].replace("-", ""), NAME, PHONE, PHONE_E164):
        assert secret.encode() not in raw


async def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *BANSOS_BOT, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
