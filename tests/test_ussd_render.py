"""USSD screens: every screen the dialogs can show fits 160 characters, in each language,
without being cut; and the Africa's Talking format maps both ways."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from itertools import product

import pytest

from bot.dialogs import router
from bot.dialogs.model import DialogContext, DialogState, Expect, Input, InputKind, Reply
from bot.filings import (
    FilingAccepted,
    FilingRefusal,
    FilingRefused,
    TicketEvent,
    TicketHistory,
    TicketList,
    TicketSummary,
)
from bot.i18n import SUPPORTED_LANGUAGES
from bot.lookup import LookupFailure
from bot.notifications import TicketMoved
from handlers.ussd import (
    SCREEN_LIMIT,
    BadUssdRequest,
    UssdScreen,
    format_africas_talking,
    input_for,
    parse_africas_talking,
    render_screen,
)
from registry_client.sandbox import generate_population
from registry_client.sandbox.app import _report

NIK = "3302015708890003"
PROBES = [
    Input(InputKind.START),
    Input(InputKind.TEXT, ""),
    Input(InputKind.TEXT, "99"),
    Input(InputKind.TEXT, "halo"),
    Input(InputKind.TEXT, "1"),
    Input(InputKind.TEXT, "2"),
    Input(InputKind.TEXT, "3"),
    Input(InputKind.TEXT, "4"),
    Input(InputKind.TEXT, "330201570889000"),
    Input(InputKind.TEXT, "33020157O8890003"),
    Input(InputKind.TEXT, "3302013208890003"),
    Input(InputKind.TEXT, "9902015708890003"),
    Input(InputKind.TEXT, NIK),
    Input(InputKind.TEXT, "S1ti"),
    Input(InputKind.TEXT, "X"),
    Input(InputKind.TEXT, "Siti @minah"),
    Input(InputKind.TEXT, "A" * 120),
    Input(InputKind.TEXT, "Siti Aminah"),
    Input(InputKind.COMMAND, "back"),
    Input(InputKind.COMMAND, "home"),
]


USSD = DialogContext(photos=False)
# What a caller types inside the filings a feature phone can make.
FILING_PROBES = [Input(InputKind.TEXT, "Jl. Mawar 3 RT 02 RW 05, Desa Sukamaju")]
NOW = datetime(2026, 11, 28, tzinfo=UTC)


def _key(state: DialogState) -> str:
    return json.dumps(
        [state.step, state.language, state.consent_version, dict(state.data), state.offered],
        sort_keys=True,
    )


def reachable_replies(language: str, depth: int = 4) -> list[Reply]:
    """Every reply a USSD caller can reach: the menus walked `depth` inputs deep from every
    step and from every filing a feature phone can start, plus every effect's outcome."""
    fresh = DialogState(step="consent", language=language, context=USSD)
    consented = router.step(fresh, Input(InputKind.TEXT, "1")).state
    starts = [fresh, consented.at("status.name", nik=NIK)]
    starts += [consented.at(step) for step in router.STEPS]
    starts += [
        router.step(consented, Input(InputKind.COMMAND, name)).state
        for name in ("sanggah", "perbaiki", "langganan", "berhenti")
    ]
    replies: list[Reply] = []
    frontier, seen = starts, {_key(state) for state in starts}
    for _ in range(depth):
        following_states = []
        for state, probe in product(frontier, PROBES + FILING_PROBES):
            transition = router.step(state, probe)
            if transition.reply is not None:
                replies.append(transition.reply)
            if _key(transition.state) not in seen:
                seen.add(_key(transition.state))
                following_states.append(transition.state)
        frontier = following_states
    return replies + outcome_replies(consented)


def outcome_replies(consented: DialogState) -> list[Reply]:
    """Replies made from what effects bring back, and messages held for the next dial."""
    waiting = consented.at("status.waiting")
    outcomes: list[object] = list(LookupFailure)
    submitting = router.step(consented, Input(InputKind.COMMAND, "sanggah")).state
    summaries = tuple(
        TicketSummary(f"BSB-ABCD{n:04d}", kind, stage, None, "DTSEN-2026-000123", NOW)
        for n, (kind, stage) in enumerate(
            [
                ("correction", "in_verification"),
                ("objection", "queued"),
                ("proposal", "refused"),
                ("objection", "rejected"),
                ("correction", "accepted"),
            ]
        )
    )
    replies = [router.resume(waiting, o).reply for o in outcomes]  # type: ignore[arg-type]
    replies += [
        router.resume(submitting.at("filing.submitting", **dict(submitting.data)), o).reply
        for o in [
            FilingAccepted("BSB-7K3M9QXP"),
            *(FilingRefused(reason, "BSB-7K3M9QXP") for reason in FilingRefusal),
        ]
    ]
    listed = router.resume(consented.at("tickets.loading"), TicketList(summaries))
    replies.append(listed.reply)
    events = tuple(TicketEvent(stage, "evidence_insufficient", NOW) for stage in ("queued",
                   "received", "in_verification", "rejected"))  # fmt: skip
    history = TicketHistory(summaries[3], events)
    replies.append(router.resume(listed.state.at("tickets.loading"), history).reply)
    mail = [
        TicketMoved("BSB-7K3M9QXP", kind, stage, reason, "DTSEN-2026-000123")
        for kind in ("proposal", "objection", "correction")
        for stage, reason in [
            ("received", None),
            ("in_verification", None),
            ("accepted", None),
            ("rejected", "field_check_disagrees"),
            ("refused", "duplicate_open_ticket"),
        ]
    ]
    for message in mail:
        replies.append(router.step(consented, Input(InputKind.START), [message]).reply)
    return [reply for reply in replies if reply is not None]


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_every_dialog_screen_fits_without_cutting(
    language: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="handlers.ussd")
    screens = {render_screen(reply) for reply in reachable_replies(language)}
    assert len(screens) > 60
    too_long = [s.text for s in screens if len(s.text) > SCREEN_LIMIT]
    assert too_long == []
    assert not [r for r in caplog.records if "shortened" in r.getMessage()]


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_every_status_report_of_a_population_fits_one_screen(language: str) -> None:
    population = generate_population(3000, seed=11)
    waiting = DialogState(step="status.waiting", language=language)
    for household in population.households:
        report = _report(household.members[0], household, population.quarter)
        reply = router.resume(waiting, report).reply
        assert reply is not None
        screen = render_screen(reply)
        assert screen.ends
        assert len(screen.text) <= SCREEN_LIMIT
        for programme in report.programmes:  # no programme is ever dropped to make room
            assert programme.code in screen.text


def test_choices_are_numbered_and_text_steps_offer_navigation() -> None:
    menu = render_screen(
        Reply(
            "Menu",
            choices=router.prompt_for(DialogState("menu", "en", context=USSD)).choices,
            expects=Expect.CHOICE,
        )
    )
    assert menu.text.splitlines()[1:] == [
        "1 Check aid status",
        "2 Object to my status",
        "3 Correct data",
        "4 My tickets",
        "5 Change notices",
        "6 Change language",
        "7 Help",
        "8 Privacy",
    ]
    asking = render_screen(Reply("Masukkan NIK:", expects=Expect.TEXT, language="id"))
    assert asking.text == "Masukkan NIK:\n0 Kembali 00 Menu" and not asking.ends


def test_an_oversized_body_is_cut_but_choices_survive() -> None:
    reply = Reply(
        "x" * 400,
        choices=router.prompt_for(DialogState("menu", "en", context=USSD)).choices,
        expects=Expect.CHOICE,
    )
    screen = render_screen(reply)
    assert len(screen.text) == SCREEN_LIMIT
    assert screen.text.endswith("8 Privacy")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("0", Input(InputKind.COMMAND, "back")),
        ("00", Input(InputKind.COMMAND, "home")),
        ("99", Input(InputKind.TEXT, "99")),
        (" Siti Aminah ", Input(InputKind.TEXT, "Siti Aminah")),
    ],
)
def test_ussd_answers_become_inputs(answer: str, expected: Input) -> None:
    assert input_for(answer) == expected


def test_africas_talking_request_carries_every_answer_of_the_session() -> None:
    request = parse_africas_talking(
        {
            "sessionId": "AT1",
            "phoneNumber": "0812-3456-789",
            "serviceCode": "*123#",
            "text": "1*3302*Siti",
        }
    )
    assert (request.session_id, request.phone) == ("AT1", "+628123456789")
    assert request.answers == ("1", "3302", "Siti")
    blank = {"sessionId": "AT1", "phoneNumber": "+628123456789", "text": ""}
    assert parse_africas_talking(blank).answers == ()
    endless = {**blank, "text": "*".join(["1"] * 200)}
    with pytest.raises(BadUssdRequest):
        parse_africas_talking(endless)


@pytest.mark.parametrize(
    "spelling",
    ["+628123456789", "628123456789", "08123456789", "+62 812-3456-789", "+62-8123456789",
     "+0628123456789"],
)  # fmt: skip
def test_every_spelling_of_a_phone_is_one_phone(spelling: str) -> None:
    form = {"sessionId": "AT1", "phoneNumber": spelling, "text": ""}
    assert parse_africas_talking(form).phone == "+628123456789"


@pytest.mark.parametrize("phone", ["", "abc", "+6281", "1" * 40])
def test_a_request_without_a_usable_phone_is_refused(phone: str) -> None:
    with pytest.raises(BadUssdRequest):
        parse_africas_talking({"sessionId": "AT1", "phoneNumber": phone, "text": ""})


def test_overlong_fields_are_refused() -> None:
    with pytest.raises(BadUssdRequest):
        parse_africas_talking({"sessionId": "A" * 200, "phoneNumber": "+628123456789"})
    with pytest.raises(BadUssdRequest):
        parse_africas_talking(
            {"sessionId": "AT1", "phoneNumber": "+628123456789", "text": "1*" * 1500}
        )


def test_africas_talking_request_without_session_is_refused() -> None:
    with pytest.raises(BadUssdRequest):
        parse_africas_talking({"text": "1", "phoneNumber": "+628123456789"})


def test_africas_talking_answers_start_with_con_or_end() -> None:
    assert format_africas_talking(UssdScreen("Menu", ends=False)) == "CON Menu"
    assert format_africas_talking(UssdScreen("Selesai", ends=True)) == "END Selesai"
