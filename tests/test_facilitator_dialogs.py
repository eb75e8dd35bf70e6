"""The facilitator's role in the pure dialog steps: their menu, the area rule on every NIK
they type, their own commands refused to citizens, a step begun under one role never
carried on under another, and the households list paged."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from bot.dialogs import facilitator, router
from bot.dialogs.model import (
    ActivateFacilitator,
    CommandMenu,
    DialogState,
    Input,
    InputKind,
    ListHouseholds,
    StatusLookup,
    Unsubscribe,
)
from bot.facilitators import (
    Activated,
    ActivationRefusal,
    ActivationRefused,
    FacilitatorRole,
    Household,
    HouseholdPage,
)
from bot.filings import TicketSummary
from bot.subscriptions import SubscriptionList
from tests.test_dialogs import choice, command, consented, play, text

AREA = "330201"
IN_AREA = AREA + "5708890003"
OUTSIDE = "3171015708890003"
ROLE = FacilitatorRole("F-ABC123", (AREA,))


def as_facilitator(state: DialogState, role: FacilitatorRole | None = ROLE) -> DialogState:
    return replace(state, context=replace(state.context, facilitator=role))


def menu_keys(state: DialogState) -> list[str]:
    return [c.key for c in router.prompt_for(state).choices]


def test_a_facilitator_gets_their_menu_and_a_citizen_does_not() -> None:
    citizen = consented()
    assert "households" not in menu_keys(citizen)
    linked = as_facilitator(citizen)
    assert "households" in menu_keys(linked)
    assert "F-ABC123" in router.prompt_for(linked).text


def test_every_nik_a_facilitator_types_must_be_of_their_areas() -> None:
    state = as_facilitator(consented())
    checked = play(state, command("cek"), text(OUTSIDE))
    assert checked.state.step == "status.nik"
    assert checked.reply is not None and "outside your areas (330201)" in checked.reply.text
    name = play(state, command("cek"), text(IN_AREA), text("Siti Aminah"))
    assert isinstance(name.effect, StatusLookup)

    subscribing = play(state, command("langganan"), text(OUTSIDE))
    assert subscribing.reply is not None and "outside your areas" in subscribing.reply.text

    correcting = play(state, command("perbaiki"), text(OUTSIDE))
    assert correcting.reply is not None and "outside your areas" in correcting.reply.text
    assert play(state, command("perbaiki"), text(IN_AREA)).state.data["draft"]

    # A citizen is bound by no area.
    assert play(consented(), command("cek"), text(OUTSIDE)).state.step == "status.name"


def test_forms_ask_for_the_household_not_for_the_facilitator() -> None:
    state = as_facilitator(consented())
    own = play(state, command("sanggah"), choice("objection_own"))
    assert own.reply is not None and "whose status is wrong" in own.reply.text
    sort = play(state, command("sanggah"))
    assert sort.reply is not None
    assert "The household's own status is wrong" in [c.label for c in sort.reply.choices]
    other = play(state, command("sanggah"), choice("objection_other"))
    assert other.reply is not None and "person who objects" in other.reply.text


def test_activation_with_or_without_the_code() -> None:
    state = consented()
    asked = play(state, command("pendamping"))
    assert asked.state.step == facilitator.CODE_STEP
    typed = play(asked.state, text(" k7m2q-9xhrt "))
    assert typed.effect == ActivateFacilitator("k7m2q-9xhrt")
    direct = router.step(state, Input(InputKind.COMMAND, "pendamping", argument="K7M2Q-9XHRT"))
    assert direct.effect == ActivateFacilitator("K7M2Q-9XHRT")
    assert "****" in repr(direct.effect) and "K7M2Q" not in repr(direct.effect)

    done = router.resume(direct.state, Activated("F-ABC123", (AREA,)))
    assert done.reply is not None and "F-ABC123" in done.reply.text
    assert "households" in [c.key for c in done.reply.choices]

    slip = router.resume(direct.state, ActivationRefused(ActivationRefusal.UNKNOWN_CODE))
    assert slip.state.step == facilitator.CODE_STEP  # typed again, not started over
    for reason in ActivationRefusal:
        refused = router.resume(direct.state, ActivationRefused(reason))
        assert refused.reply is not None and refused.reply.text.strip()

    again = play(as_facilitator(state), command("pendamping"))
    assert again.effect is None and again.reply is not None and "already" in again.reply.text


def menu_of(transition: router.Transition) -> CommandMenu | None:
    assert transition.reply is not None
    return transition.reply.menu


def test_the_chats_command_menu_follows_the_role_and_a_facilitators_language() -> None:
    citizen = consented()
    assert menu_of(play(citizen, command("bantuan"))) is None
    assert menu_of(play(citizen, command("bahasa"), choice("id"))) is None  # the app's own

    asked = router.step(citizen, Input(InputKind.COMMAND, "pendamping", argument="K7M2Q-9XHRT"))
    assert menu_of(router.resume(asked.state, ActivationRefused(ActivationRefusal.EXPIRED))) is None
    activated = router.resume(asked.state, Activated("F-ABC123", (AREA,)))
    assert menu_of(activated) is CommandMenu.FACILITATOR
    linked = as_facilitator(activated.state)  # what the next message's context says
    helped = router.step(linked, command("bantuan"))
    assert menu_of(helped) is None  # set once, not with every reply
    relabelled = play(linked, command("bahasa"), choice("id"))
    assert menu_of(relabelled) is CommandMenu.FACILITATOR
    assert relabelled.reply is not None and relabelled.reply.language == "id"

    # Deactivated while at the menu: the next message, whatever it is, takes the menu back.
    deactivated = router.step(as_facilitator(helped.state, None), command("bantuan"))
    assert menu_of(deactivated) is CommandMenu.CITIZEN
    assert menu_of(router.step(deactivated.state, command("bantuan"))) is None
    # And in the middle of a form.
    begun = play(linked, command("perbaiki"))
    stopped = router.step(as_facilitator(begun.state, None), text(IN_AREA))
    assert menu_of(stopped) is CommandMenu.CITIZEN


def test_citizens_are_refused_the_facilitator_commands() -> None:
    state = consented()
    refused = play(state, command("dampingan"))
    assert refused.effect is None and refused.state.step == state.step
    assert refused.reply is not None and "facilitators only" in refused.reply.text
    # Before consent nothing is asked, not even a code.
    unconsented = play(router.new_state("en"), Input(InputKind.START), command("pendamping"))
    assert unconsented.state.step == "consent"


def test_a_step_begun_under_one_role_is_not_carried_on_under_another() -> None:
    begun = play(as_facilitator(consented()), command("perbaiki"))
    assert begun.state.data[facilitator.ROLE_KEY] == "F-ABC123"
    deactivated = as_facilitator(begun.state, None)
    stopped = router.step(deactivated, text(IN_AREA))
    assert stopped.state.step == "menu" and "households" not in menu_keys(stopped.state)
    assert stopped.reply is not None and "nothing was sent" in stopped.reply.text

    citizen_form = play(consented(), command("perbaiki")).state
    now_linked = router.step(as_facilitator(citizen_form), text(IN_AREA))
    assert now_linked.state.step == "menu"


def test_a_facilitator_cannot_erase_the_households_filings_from_the_chat() -> None:
    state = as_facilitator(consented())
    refused = play(state, command("hapus_data"))
    assert refused.effect is None and refused.state.step == "menu"
    assert refused.reply is not None and "deactivate your account first" in refused.reply.text


def test_households_are_listed_a_page_at_a_time() -> None:
    state = as_facilitator(consented())
    loading = play(state, command("dampingan"))
    assert loading.effect == ListHouseholds(0)
    filed = datetime(2026, 11, 1, tzinfo=UTC)
    ticket = TicketSummary("BSB-0000ABCD", "objection", "in_verification", None, None, filed)
    page = HouseholdPage(
        (
            Household("3302********0003", filed, (ticket,)),
            Household("3302********0004", filed, ()),
        ),
        page=0,
        total=10,
        per_page=2,
    )
    shown = router.resume(loading.state, page)
    assert shown.reply is not None
    assert "Your households (10)" in shown.reply.text
    assert "BSB-0000ABCD: Objection, being checked in the field" in shown.reply.text
    assert "no tickets" in shown.reply.text
    assert [c.key for c in shown.reply.choices] == ["next", "home"]
    following = router.step(shown.state, choice("next"))
    assert following.effect == ListHouseholds(1)

    last = router.resume(loading.state, replace(page, page=4))
    assert last.reply is not None and [c.key for c in last.reply.choices] == ["previous", "home"]
    empty = router.resume(loading.state, HouseholdPage((), 0, 0, 8))
    assert empty.reply is not None and "No households" in empty.reply.text


def test_hundreds_of_followed_households_are_stopped_a_page_at_a_time() -> None:
    state = as_facilitator(consented())
    loading = play(state, command("berhenti"))
    listed = SubscriptionList(tuple((n, f"3302********{n:04d}") for n in range(1, 15)))
    shown = router.resume(loading.state, listed)
    assert shown.reply is not None
    keys = [c.key for c in shown.reply.choices]
    assert keys == [f"stop:{n}" for n in range(1, 7)] + ["next", "home"]
    second = router.step(shown.state, choice("next"))
    assert second.reply is not None
    assert [c.key for c in second.reply.choices] == [
        *(f"stop:{n}" for n in range(7, 13)),
        "previous",
        "next",
        "home",
    ]
    last = router.step(router.step(second.state, choice("next")).state, choice("stop:14"))
    assert last.effect == Unsubscribe(14)
    # A number from a page not shown is no answer: choices come from the page on screen.
    assert router.step(second.state, choice("stop:1")).effect is None
