"""The main menu and the help page."""

from __future__ import annotations

from bot.dialogs.filing import start_filing
from bot.dialogs.model import Choice, DialogState, Expect, Input, InputKind, Reply, Transition
from bot.dialogs.status import (
    CHECKED_NAME,
    CHECKED_NIK,
    OBJECT_TO_RESULT,
    SUBSCRIBE_TO_RESULT,
    handle_nik,
)
from bot.dialogs.subscribe import subscribe_checked
from bot.i18n import Translator
from bot.nik import NIK_LENGTH

# Typing a NIK at the menu starts a check with it: people do that before reading menus.
_NIK_LIKE_MIN_DIGITS = 10


def menu_prompt(state: DialogState, t: Translator) -> Reply:
    if state.context.facilitator is not None:
        return _facilitator_menu(state.context.facilitator.id, t)
    filings = (
        (
            Choice("proposal", t.gettext("Propose a household")),
            Choice("objection", t.gettext("Object (sanggah)")),
        )
        if state.context.photos
        else (Choice("objection", t.gettext("Object to my status")),)
    )
    return Reply(
        text=t.gettext("DTSEN social-aid service. What would you like to do?"),
        brief=t.gettext("DTSEN aid: free, never PIN/OTP"),
        choices=(
            Choice("check", t.gettext("Check aid status")),
            *filings,
            Choice("correction", t.gettext("Correct data")),
            Choice("tickets", t.gettext("My tickets")),
            *_settings_choices(t),
        ),
        expects=Expect.CHOICE,
        brief_gives_way=True,
    )


def _facilitator_menu(facilitator_id: str, t: Translator) -> Reply:
    """The same steps as a citizen's, worded for someone acting for households."""
    return Reply(
        text=t.gettext(
            "PKH facilitator {id}. What would you like to do for a household of your areas?"
        ).format(id=facilitator_id),
        choices=(
            Choice("check", t.gettext("Check a household")),
            Choice("proposal", t.gettext("Propose a household")),
            Choice("objection", t.gettext("Object (sanggah)")),
            Choice("correction", t.gettext("Correct data")),
            Choice("households", t.gettext("My households")),
            Choice("tickets", t.gettext("Tickets filed")),
            *_settings_choices(t),
        ),
        expects=Expect.CHOICE,
    )


def _settings_choices(t: Translator) -> tuple[Choice, ...]:
    """The end of every menu: notices, language, help and privacy."""
    return (
        Choice("notices", t.gettext("Change notices")),
        Choice("language", t.gettext("Change language")),
        Choice("help", t.gettext("Help")),
        Choice("privacy", t.gettext("Privacy")),
    )


def handle_menu(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is InputKind.TEXT and _looks_like_nik(inp.value):
        return handle_nik(state.at("status.nik"), inp, t)
    if inp.kind is InputKind.CHOICE and inp.value == OBJECT_TO_RESULT:
        # The household just checked: its NIK and name are kept until the step expires.
        nik, name = state.text(CHECKED_NIK), state.text(CHECKED_NAME)
        prefill = {"nik": nik, "name": name} if nik and name else None
        return start_filing(state, "objection_own", prefill)
    if inp.kind is InputKind.CHOICE and inp.value == SUBSCRIBE_TO_RESULT:
        nik = state.text(CHECKED_NIK)
        return subscribe_checked(state, nik) if nik else None
    return None


def _looks_like_nik(text: str) -> bool:
    digits = sum(ch.isdigit() for ch in text)
    return digits >= _NIK_LIKE_MIN_DIGITS and digits <= NIK_LENGTH + 4


def help_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(
        text=t.gettext(
            "How this service works:\n"
            "/cek — check a household's social-aid status (PKH, BPNT/Sembako, PBI-JK, BLT, "
            "PIP) with the NIK and the name as written on the KTP.\n"
            "/usul — propose a household that should get aid, with photos of the house.\n"
            "/sanggah — object (sanggahan): say that your own status is wrong, or that a "
            "recipient is not eligible.\n"
            "/perbaiki — correct household data: a birth, a death, a move, the address.\n"
            "/tiket — follow what you filed, step by step.\n"
            "/langganan — get a message when a household's aid changes.\n"
            "/bahasa — change the language.\n"
            "/privasi — what we do with your data; withdraw your consent.\n"
            "/batal — stop what you are doing and go back to the menu.\n"
            "/bantuan — this help.\n\n"
            "The answer shows the welfare decile (desil 1 = the poorest tenth of households), "
            "each programme with its status, and what you can do next. The registry (DTSEN) "
            "is updated every quarter.\n\n"
            "This service is free. Nobody from it will ever ask you for money, a PIN or an "
            "OTP code."
        ),
        brief=t.gettext(
            "Check: NIK (16 digits) + name as on KTP. Decile 1 = poorest tenth. "
            "Updated each quarter. Free: never give money/PIN/OTP."
        ),
        choices=(Choice("back", t.gettext("Back")),),
        expects=Expect.CHOICE,
    )
