"""Each dialog step as a pure function: (state, input) → (state, reply, effect)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.dialogs import router
from bot.dialogs.model import (
    CONSENT_VERSION,
    FORGOTTEN_STEP,
    DialogContext,
    DialogState,
    EraseMyData,
    Expect,
    Input,
    InputKind,
    StatusLookup,
    Transition,
)
from bot.lookup import LookupFailure
from bot.personal_data import Erased
from registry_client.models import Household, ProgrammeStatus, StatusReport

NIK = "3302015708890003"


def text(value: str) -> Input:
    return Input(InputKind.TEXT, value)


def choice(key: str) -> Input:
    return Input(InputKind.CHOICE, key)


def command(name: str) -> Input:
    return Input(InputKind.COMMAND, name)


def play(state: DialogState, *inputs: Input) -> Transition:
    transition = Transition(state)
    for inp in inputs:
        transition = router.step(transition.state, inp)
        state = transition.state
    return transition


def fresh(language: str = "en") -> DialogState:
    return router.step(router.new_state(language), Input(InputKind.START)).state


def consented(language: str = "en") -> DialogState:
    return play(fresh(language), choice("agree"), command("batal")).state


def report() -> StatusReport:
    return StatusReport(
        quarter="2026Q4",
        name_masked="SI** AM****",
        household=Household(decile=3, kecamatan_code="330201", members=4),
        programmes=(
            ProgrammeStatus("PKH", "active", since="2025Q1", amount_idr=750000, period="2026Q4"),
        ),
        updated_at=datetime(2026, 10, 18, tzinfo=UTC),
    )


def test_start_shows_the_privacy_notice_before_anything_else() -> None:
    transition = router.step(router.new_state("en"), Input(InputKind.START))
    assert transition.state.step == "consent"
    assert transition.reply is not None
    assert "never ask for money, a PIN, a password or an OTP" in transition.reply.text
    assert [c.key for c in transition.reply.choices] == ["agree", "decline", "language", "keeping"]


@pytest.mark.parametrize("name", ["cek", "check", "privasi"])
def test_no_nik_is_asked_before_consent(name: str) -> None:
    transition = play(fresh(), command(name))
    assert transition.state.step == "consent"
    assert transition.state.consent_version is None


def test_agreeing_records_consent_and_asks_for_the_nik() -> None:
    transition = play(fresh(), choice("agree"))
    assert transition.state.consent_version == CONSENT_VERSION
    assert transition.state.step == "status.nik"
    assert transition.reply is not None and transition.reply.expects is Expect.TEXT


def test_declining_processes_nothing() -> None:
    transition = play(fresh(), choice("decline"))
    assert transition.state.consent_version is None
    assert transition.reply is not None and transition.reply.expects is Expect.NOTHING


def test_a_numbered_answer_picks_the_offered_choice() -> None:
    assert play(fresh(), text("1")).state.step == "status.nik"


@pytest.mark.parametrize("answer", ["99", "5", "0x", "halo"])
def test_text_where_a_choice_is_expected_keeps_the_step(answer: str) -> None:
    transition = play(fresh(), text(answer))
    assert transition.state.step == "consent"
    assert transition.reply is not None
    assert transition.reply.text.startswith("Please choose one of the options")
    assert [c.key for c in transition.reply.choices] == ["agree", "decline", "language", "keeping"]


def test_valid_nik_moves_to_the_name_and_keeps_the_nik() -> None:
    transition = play(consented(), command("cek"), text("3302 0157 0889 0003"))
    assert transition.state.step == "status.name"
    assert transition.state.data["nik"] == NIK


def test_fifteen_digits_get_a_reason_and_the_same_question() -> None:
    transition = play(consented(), command("cek"), text("330201570889000"))
    assert transition.state.step == "status.nik"
    assert transition.reply is not None
    assert "A NIK has 16 digits; you typed 15 digits." in transition.reply.text
    assert "Type the NIK" in transition.reply.text


def test_a_photo_where_a_nik_is_expected_is_refused_politely() -> None:
    transition = play(consented(), command("cek"), Input(InputKind.PHOTO, "file-id"))
    assert transition.state.step == "status.nik"
    assert transition.reply is not None and "photo" in transition.reply.text


def test_name_with_digits_is_refused() -> None:
    transition = play(consented(), command("cek"), text(NIK), text("Siti 4minah"))
    assert transition.state.step == "status.name"
    assert transition.effect is None


def test_name_leads_to_a_lookup_effect_with_both_factors() -> None:
    transition = play(consented(), command("cek"), text(NIK), text("  Siti   Aminah "))
    assert transition.effect == StatusLookup(nik=NIK, name="Siti Aminah")
    assert transition.state.step == "status.waiting"
    assert transition.reply is None


def test_a_nik_typed_at_the_menu_starts_a_check() -> None:
    transition = play(consented(), text(NIK))
    assert transition.state.step == "status.name"


def test_found_report_ends_the_check_keeping_the_pair_only_for_an_objection() -> None:
    waiting = play(consented(), command("cek"), text(NIK), text("Siti Aminah")).state
    transition = router.resume(waiting, report())
    assert transition.state.step == "menu"
    assert dict(transition.state.data) == {"checked_nik": NIK, "checked_name": "Siti Aminah"}
    assert transition.reply is not None and "Rp750.000" in transition.reply.text
    assert transition.reply.expects is Expect.NOTHING
    assert [c.key for c in transition.reply.choices] == [
        "check",
        "subscribe_result",
        "object_status",
        "home",
    ]
    objection = router.step(transition.state, choice("object_status"))
    assert objection.state.step == "filing.field"
    assert objection.reply is not None  # the NIK and name are not asked again
    assert [c.key for c in objection.reply.choices] == [
        "decile_wrong",
        "aid_stopped",
        "not_listed",
        "other",
    ]


@pytest.mark.parametrize("failure", list(LookupFailure))
def test_a_failed_check_forgets_nik_and_name(failure: LookupFailure) -> None:
    waiting = play(consented(), command("cek"), text(NIK), text("Siti Aminah")).state
    assert router.resume(waiting, failure).state.data == {}


@pytest.mark.parametrize("failure", list(LookupFailure))
def test_every_failure_has_its_own_clear_answer(failure: LookupFailure) -> None:
    waiting = play(consented(), command("cek"), text(NIK), text("Siti Aminah")).state
    transition = router.resume(waiting, failure)
    assert transition.state.step == "menu"
    assert transition.reply is not None and transition.reply.text
    others = [router.resume(waiting, f).reply for f in LookupFailure if f is not failure]
    assert all(other is not None and other.text != transition.reply.text for other in others)


def test_back_from_name_returns_to_nik_and_drops_it() -> None:
    transition = play(consented(), command("cek"), text(NIK), command("back"))
    assert transition.state.step == "status.nik"
    assert "nik" not in transition.state.data


def test_home_from_anywhere_shows_the_menu() -> None:
    transition = play(consented(), command("cek"), text(NIK), command("home"))
    assert transition.state.step == "menu"
    assert dict(transition.state.data) == {}
    assert transition.reply is not None and transition.reply.expects is Expect.CHOICE
    assert transition.reply.text == "DTSEN social-aid service. What would you like to do?"
    assert [c.key for c in transition.reply.choices][:2] == ["check", "proposal"]


def test_language_change_comes_back_to_the_same_question_in_the_new_language() -> None:
    at_name = play(consented("en"), command("cek"), text(NIK))
    transition = play(at_name.state, command("bahasa"), choice("id"))
    assert transition.state.language == "id"
    assert transition.state.step == "status.name"
    assert transition.state.data["nik"] == NIK
    # The confirmation and the open question again, both already in Indonesian.
    assert transition.reply is not None
    assert transition.reply.text == (
        "Bahasa: Indonesia.\n\nSekarang ketik nama lengkap persis seperti tertulis di KTP."
    )
    assert transition.reply.expects is Expect.TEXT and transition.reply.language == "id"


def test_help_keeps_the_place_and_text_after_it_goes_to_that_step() -> None:
    at_nik = play(consented(), command("cek"))
    helped = play(at_nik.state, command("bantuan"))
    assert helped.state.step == "help"
    assert helped.reply is not None and "/cek" in helped.reply.text
    after = play(helped.state, text(NIK))
    assert after.state.step == "status.name"
    assert after.reply is not None and after.reply.expects is Expect.TEXT
    assert after.reply.text == "Now type the full name exactly as written on the KTP."


def test_unknown_command_keeps_the_conversation_where_it_was() -> None:
    at_nik = play(consented(), command("cek"))
    transition = play(at_nik.state, command("hapus"))
    assert transition.state.step == "status.nik"
    assert transition.reply is not None and transition.reply.text.startswith("Unknown command")


def test_a_stale_button_does_nothing_but_say_so() -> None:
    at_nik = play(consented(), command("cek"))
    transition = play(at_nik.state, choice("agree"))
    assert transition.state.step == "status.nik"
    assert transition.reply is not None and "no longer active" in transition.reply.text


def test_input_while_waiting_for_the_registry_says_to_wait() -> None:
    waiting = play(consented(), command("cek"), text(NIK), text("Siti Aminah")).state
    transition = play(waiting, text("halo?"))
    assert transition.state.step == "status.waiting"
    assert transition.effect is None
    assert transition.reply is not None
    assert transition.reply.text == "Still checking, please wait a moment…"
    assert transition.reply.choices == () and transition.reply.expects is Expect.NOTHING


def test_withdrawing_consent_erases_after_a_confirmation() -> None:
    confirm = play(consented(), command("privasi"), choice("withdraw"))
    assert confirm.state.step == "erase.confirm" and confirm.reply is not None
    assert confirm.reply.text.startswith("Withdrawing your consent stops all processing")
    assert play(confirm.state, choice("keep")).state.step == "menu"
    erasing = play(confirm.state, choice("erase_yes"))
    assert erasing.effect == EraseMyData()
    done = router.resume(erasing.state, Erased(filings=1, photos=2, subscriptions=0, messages=0))
    assert done.state.step == FORGOTTEN_STEP  # the engine deletes the conversation
    assert done.reply is not None and "filings 1, photos 2" in done.reply.text


def test_what_we_keep_pages_on_ussd_and_comes_back() -> None:
    ussd = replace(fresh(), context=DialogContext(photos=False, photo_retention_days=14))
    page = play(ussd, choice("keeping"))
    seen = [page.reply.text if page.reply else ""]
    while "more" in page.state.offered:
        page = play(page.state, choice("more"))
        seen.append(page.reply.text if page.reply else "")
    assert len(seen) == 6 and any("14 days" in line for line in seen)
    assert play(page.state, choice("done")).state.step == "consent"


def test_outdated_consent_is_asked_again() -> None:
    old = replace(consented(), consent_version="2020-01")
    assert play(old, command("cek")).state.step == "consent"


def test_offered_choices_are_remembered_for_numbered_answers() -> None:
    transition = play(consented(), command("start"))
    assert transition.state.offered == (
        "check",
        "proposal",
        "objection",
        "correction",
        "tickets",
        "notices",
        "language",
        "help",
        "privacy",
    )
    assert play(transition.state, text("7")).state.step == "language"
    assert play(transition.state, text("5")).state.step == "tickets.loading"
