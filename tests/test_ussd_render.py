"""USSD screens: every screen the dialogs can show fits 160 characters, in each language,
without being cut; and the Africa's Talking format maps both ways."""

from __future__ import annotations

import logging
from itertools import product

import pytest

from bot.dialogs import router
from bot.dialogs.model import DialogState, Expect, Input, InputKind, LookupFailure, Reply
from bot.i18n import SUPPORTED_LANGUAGES
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


def reachable_replies(language: str) -> list[Reply]:
    """Every reply two inputs deep from every step, consented or not."""
    starts = [router.new_state(language)]
    consented = router.step(starts[0], Input(InputKind.TEXT, "1")).state
    starts += [consented.at(step) for step in router.STEPS] + [consented.at("status.name", nik=NIK)]
    replies: list[Reply] = []
    for state, first in product(starts, PROBES):
        transition = router.step(state, first)
        if transition.reply is not None:
            replies.append(transition.reply)
        for second in PROBES:
            following = router.step(transition.state, second)
            if following.reply is not None:
                replies.append(following.reply)
    waiting = consented.at("status.waiting")
    replies += [router.resume(waiting, failure).reply for failure in LookupFailure]  # type: ignore[misc]
    return replies


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_every_dialog_screen_fits_without_cutting(
    language: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="handlers.ussd")
    screens = {render_screen(reply) for reply in reachable_replies(language)}
    assert len(screens) > 25
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
            choices=router.prompt_for(DialogState("menu", "id")).choices,
            expects=Expect.CHOICE,
        )
    )
    assert menu.text.splitlines()[1:] == [
        "1 Cek status bansos",
        "2 Ganti bahasa",
        "3 Bantuan",
        "4 Privasi",
    ]
    asking = render_screen(Reply("Masukkan NIK:", expects=Expect.TEXT, language="id"))
    assert asking.text == "Masukkan NIK:\n0 Kembali 00 Menu" and not asking.ends


def test_an_oversized_body_is_cut_but_choices_survive() -> None:
    reply = Reply(
        "x" * 400,
        choices=router.prompt_for(DialogState("menu", "en")).choices,
        expects=Expect.CHOICE,
    )
    screen = render_screen(reply)
    assert len(screen.text) == SCREEN_LIMIT
    assert screen.text.endswith("4 Privacy")


@pytest.mark.parametrize(
    ("latest", "expected"),
    [
        (None, Input(InputKind.START)),
        ("0", Input(InputKind.COMMAND, "back")),
        ("00", Input(InputKind.COMMAND, "home")),
        ("99", Input(InputKind.TEXT, "99")),
        (" Siti Aminah ", Input(InputKind.TEXT, "Siti Aminah")),
    ],
)
def test_ussd_answers_become_inputs(latest: str | None, expected: Input) -> None:
    assert input_for(latest) == expected


def test_africas_talking_request_takes_the_latest_answer() -> None:
    request = parse_africas_talking(
        {"sessionId": "AT1", "phoneNumber": "+6281", "serviceCode": "*123#", "text": "1*3302*Siti"}
    )
    assert (request.session_id, request.phone, request.latest) == ("AT1", "+6281", "Siti")
    assert parse_africas_talking({"sessionId": "AT1", "text": ""}).latest is None


def test_africas_talking_request_without_session_is_refused() -> None:
    with pytest.raises(BadUssdRequest):
        parse_africas_talking({"text": "1"})


def test_africas_talking_answers_start_with_con_or_end() -> None:
    assert format_africas_talking(UssdScreen("Menu", ends=False)) == "CON Menu"
    assert format_africas_talking(UssdScreen("Selesai", ends=True)) == "END Selesai"
