"""Scam resistance: every message that mentions money says that the service never asks for
money, a PIN or an OTP; and the bot sends no links, only its own /commands.

Nothing here is a hand-made list of messages. The catalog texts are extracted from the
source as `make locales` extracts them; the replies are every reply the dialogs reach,
walked from the first /start (or dial) with a cooperative answer to each question and
every choice offered, each effect answered with every kind of outcome, on Telegram and
on USSD, in each language.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from bot.dialogs import router
from bot.dialogs.filing import FIELD_STEP, Draft
from bot.dialogs.filing_forms import FieldKind
from bot.dialogs.model import (
    Attachment,
    DialogContext,
    DialogState,
    Effect,
    Expect,
    Input,
    InputKind,
    ListSubscriptions,
    ListTickets,
    Outcome,
    PhotoAccepted,
    PhotoRefused,
    ReceivePhoto,
    Reply,
    ShowTicket,
    StatusLookup,
    SubmitFiling,
    Subscribe,
    TicketMissing,
    Transition,
    Unsubscribe,
)
from bot.dialogs.notifications import render_notification
from bot.filings import (
    FilingAccepted,
    FilingKind,
    FilingRefusal,
    FilingRefused,
    Location,
    TicketEvent,
    TicketHistory,
    TicketList,
    TicketSummary,
)
from bot.i18n import LOCALES_DIR, SUPPORTED_LANGUAGES, translator
from bot.lookup import LookupFailure
from bot.notifications import Notification, QuarterNotice, TicketMoved
from bot.photos import PhotoProblem
from bot.subscriptions import Subscribed, SubscriptionList, TooManySubscriptions, Unsubscribed
from handlers.ussd import SCREEN_LIMIT, render_screen
from registry_client.models import PROGRAMME_CODES, Household, ProgrammeStatus, StatusReport
from registry_client.sandbox import generate_population
from registry_client.sandbox.masking import mask_name

ROOT = Path(__file__).resolve().parent.parent

# Money, in the words of every catalog: an amount, cash, payments, fees, banks, premiums.
MONEY = re.compile(
    r"\bRp\s?\d"
    r"|\b(?:money|cash|pay\w*|paid|fees?|costs?|prices?|premiums?|banks?|rupiah|IDR"
    r"|uang|tunai|\w*bayar\w*|biaya|iuran|premi|harga|tarif"
    # Javanese and Sundanese: money, pay, cost, price.
    r"|dhuwit|duwit|duit|artos|arta|\w*mayar\w*|beaya|waragad|ragad|rega|regane)\b",
    re.IGNORECASE,
)
# The warning names all three together: "money, a PIN or an OTP", "uang/PIN/OTP",
# "uang, PIN, kata sandi, atau kode OTP", "dhuwit, PIN utawa kode OTP", "artos, PIN …".
WARNING = re.compile(
    r"(?i:\b(?:money|uang|dhuwit|duwit|duit|artos|arta)\b)\W+(?:\w+\W+){0,3}?PIN\b\W+"
    r"(?:\w+\W+){0,4}?OTP\b"
)
# Any web address or Telegram link; a /command is no link.
LINK = re.compile(
    r"https?://|\bwww\.|\bt\.me\b|telegram\.me"
    r"|\b[\w-]+(?:\.[\w-]+)*\.(?:com|id|org|net|io|me|co|ly|link)\b",
    re.IGNORECASE,
)


# --- the catalog texts -----------------------------------------------------------------------


def source_messages() -> list[str | tuple[str, ...]]:
    """The messages `make locales` extracts (babel.cfg, Babel's keywords and N_)."""
    with (ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)  # type: ignore[no-untyped-call]
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    return [
        message
        for _, _, message, _, _ in extract_from_dir(
            ROOT, method_map, options_map, keywords=keywords
        )
    ]


def singulars_and_plurals(message: str | tuple[str, ...]) -> tuple[str, ...]:
    return message if isinstance(message, tuple) else (message,)


def as_shown(message: str | tuple[str, ...], language: str) -> tuple[str, ...]:
    """A message as its translation in `language` reads (both forms of a plural)."""
    t = translator(language)
    if isinstance(message, tuple):
        return (t.ngettext(message[0], message[1], 1), t.ngettext(message[0], message[1], 2))
    return (t.gettext(message),)


def catalog_texts() -> Iterator[tuple[str, str]]:
    """(language, text) for every translation in every catalog: they are what is sent."""
    for language in SUPPORTED_LANGUAGES:
        with (LOCALES_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
            for entry in read_po(handle, locale=language):
                if not entry.id:  # the catalog's header
                    continue
                strings = entry.string if isinstance(entry.string, tuple | list) else [entry.string]
                for text in strings:
                    if text:
                        yield language, text


@pytest.mark.parametrize(
    ("text", "is_link"),
    [
        ("Check at https://cekbansos.kemensos.go.id now", True),
        ("http://bit.ly/bansos", True),
        ("www.bansos-cair.com", True),
        ("Chat with t.me/BansosAdmin_bot", True),
        ("Visit bansos.id for the form", True),
        ("cekbansos.kemensos.go.id", True),
        ("Use /cek, /usul or /bantuan.", False),
        ("PKH aktif Rp750.000", False),
        ("Invalid service code, e.g. *123*7#", False),
        ("Jl. Mawar 3, RT/RW 02/05", False),
        ("PT Pos; ask the village office.", False),
    ],
)
def test_the_link_detector_knows_a_link(text: str, is_link: bool) -> None:
    assert bool(LINK.search(text)) is is_link


@pytest.mark.parametrize(
    ("text", "warns"),
    [
        ("This service never asks for money, a PIN or an OTP code.", True),
        ("We never ask for money, a PIN, a password or an OTP code.", True),
        ("Free: no money/PIN/OTP.", True),
        ("Layanan ini tidak pernah meminta uang, PIN, atau kode OTP.", True),
        ("Gratis: tanpa uang/PIN/OTP.", True),
        ("Never share your PIN or OTP.", False),  # says nothing about money
        ("PKH aktif Rp750.000", False),
    ],
)
def test_the_warning_detector_knows_the_warning(text: str, warns: bool) -> None:
    assert bool(WARNING.search(text)) is warns


def test_no_message_in_the_code_holds_a_link() -> None:
    messages = [text for m in source_messages() for text in singulars_and_plurals(m)]
    assert len(messages) > 200  # the extraction found the catalog, not an empty tree
    assert [text for text in messages if LINK.search(text)] == []


def test_no_translation_holds_a_link() -> None:
    assert [(lang, text) for lang, text in catalog_texts() if LINK.search(text)] == []


# --- every reply the dialogs reach ------------------------------------------------------------

TELEGRAM = DialogContext(photos=True)
USSD = DialogContext(photos=False)
NIK = "3302015708890003"  # valid, and of the same kecamatan as OTHER_NIK
OTHER_NIK = "3302016512900007"
NAME = "Siti Aminah"
WORDS = "Rumah kami bocor dan dindingnya dari bambu"
PHOTO = Attachment("photo-file", 120_000, "image/jpeg")
WHERE = Location(-7.43, 109.24)
NOW = datetime(2026, 11, 28, tzinfo=UTC)
# The walk sends every form, changes it and sends it again in a few thousand states; far
# more means a state holds something that keeps growing.
MOST_STATES = 20_000


def _report(*programmes: ProgrammeStatus, name: str = "SI** AM****") -> StatusReport:
    return StatusReport(
        quarter="2026Q4",
        name_masked=name,
        household=Household(decile=3, kecamatan_code="330201", members=6),
        programmes=programmes,
        updated_at=NOW,
    )


# Reports of every shape: the longest amounts of all programmes, amounts without a period,
# ended and refused ones with reasons, and none at all.
REPORTS = (
    _report(
        *(
            ProgrammeStatus(code, "active", since="2025Q1", amount_idr=12_500_000, period="2026Q4")
            for code in PROGRAMME_CODES
        ),
        name="MUH***** MA***** AL-******* WI*******",
    ),
    _report(
        ProgrammeStatus("PKH", "active", since="2025Q1", amount_idr=750_000, period="2026Q4"),
        ProgrammeStatus("PBI-JK", "active", since="2024Q3"),
        ProgrammeStatus("BLT", "active", amount_idr=600_000),
        ProgrammeStatus("BPNT", "ended", until="2026Q3", reason_code="decile_above_cutoff"),
        ProgrammeStatus("PIP", "refused", reason_code="not_verified_siak"),
    ),
    _report(ProgrammeStatus("PKH", "active", since="2025Q1", amount_idr=750_000)),
    _report(),
)
_TICKETS: list[tuple[FilingKind, str, str | None]] = [
    ("proposal", "queued", None),
    ("objection", "rejected", "field_check_disagrees"),
    ("correction", "accepted", None),
]
SUMMARIES = tuple(
    TicketSummary(f"BSB-ABCD{n:04d}", kind, stage, reason, "DTSEN-2026-000123", NOW)
    for n, (kind, stage, reason) in enumerate(_TICKETS)
)
NOTIFICATIONS: tuple[Notification, ...] = (
    QuarterNotice("2026Q4", 3, 2, tuple(PROGRAMME_CODES), (), None),
    QuarterNotice("2026Q4", 2, 6, (), tuple(PROGRAMME_CODES), "decile_above_cutoff"),
    *(
        TicketMoved("BSB-7K3M9QXP", "objection", stage, reason, "DTSEN-2026-000123")
        for stage, reason in [
            ("received", None),
            ("in_verification", None),
            ("accepted", None),
            ("rejected", "field_check_disagrees"),
            ("refused", "duplicate_open_ticket"),
        ]
    ),
)


def outcomes_for(effect: Effect, state: DialogState) -> tuple[Outcome, ...]:
    """Every kind of answer the effect's service gives."""
    if isinstance(effect, StatusLookup):
        return (*REPORTS, *LookupFailure)
    if isinstance(effect, ReceivePhoto):
        # A different photo for each one a form asks, the same when the walk comes back.
        draft = Draft.of(state)
        asked = (draft.at, draft.photos_of(draft.at or "")) if draft else None
        digest = hashlib.sha256(repr(asked).encode()).hexdigest()
        return (PhotoAccepted(digest), PhotoRefused(PhotoProblem.NOT_AN_IMAGE))
    if isinstance(effect, SubmitFiling):
        return (
            FilingAccepted("BSB-7K3M9QXP"),
            *(FilingRefused(reason, "BSB-7K3M9QXP") for reason in FilingRefusal),
        )
    if isinstance(effect, ListTickets):
        return (TicketList(SUMMARIES), TicketList(()))
    if isinstance(effect, ShowTicket):
        summary = replace(SUMMARIES[1], ticket=effect.ticket)
        events = tuple(TicketEvent(s, None, NOW) for s in ("queued", "received", "rejected"))
        return (TicketHistory(summary, events), TicketMissing(effect.ticket))
    if isinstance(effect, Subscribe):
        return (Subscribed(already=False), Subscribed(already=True), TooManySubscriptions(5))
    if isinstance(effect, ListSubscriptions):
        return (SubscriptionList(((7, "3302********0003"),)), SubscriptionList(()))
    if isinstance(effect, Unsubscribe):
        return (Unsubscribed(removed=True), Unsubscribed(removed=False))
    # An effect new to this walk: its replies go unseen, and if one mentions money,
    # test_the_walk_shows_every_message_that_mentions_money says so.
    return ()


def _key(state: DialogState) -> str:
    return json.dumps(
        [state.step, state.language, state.consent_version, dict(state.data), state.offered],
        sort_keys=True,
    )


def answers_for(state: DialogState) -> list[Input]:
    """What a cooperative person sends at this point: each offered choice, or the answer
    the open question asks for; at the menu also every command a chat can send (a phone
    has only `0` and `00`)."""
    offered = state.offered
    draft = Draft.of(state)
    if state.step == FIELD_STEP and draft is not None and draft.editing:
        # A change from the review asks again what the walk has answered every way: one
        # answer shows the way back, and the walk stays the size of the forms.
        offered = offered[:1]
    inputs = [Input(InputKind.CHOICE, key) for key in offered]
    prompt = router.prompt_for(state)
    if prompt.expects is Expect.PHOTO:
        inputs.append(Input(InputKind.PHOTO, attachment=PHOTO))
    elif prompt.expects is Expect.LOCATION:
        inputs.append(Input(InputKind.LOCATION, location=WHERE))
    elif prompt.expects is Expect.TEXT:
        inputs.append(Input(InputKind.TEXT, _typed_answer(state)))
    if state.step == "menu":
        commands = sorted(set(router.COMMANDS)) if state.context.photos else ["back", "home"]
        inputs += [Input(InputKind.COMMAND, name) for name in commands]
    return inputs


def _typed_answer(state: DialogState) -> str:
    kind = None
    draft = Draft.of(state)
    if state.step == FIELD_STEP and draft is not None and draft.at is not None:
        asked = draft.spec.field(draft.at)
        kind = asked.kind if asked else None
    if kind in (FieldKind.NIK, FieldKind.KK) or state.step.endswith(".nik"):
        # Your own NIK first, then another's of the same area: an objection is accepted.
        return OTHER_NIK if draft is not None and NIK in draft.values.values() else NIK
    if kind is FieldKind.NAME or state.step.endswith(".name"):
        return NAME
    return WORDS


@dataclass(frozen=True)
class Shown:
    """A reply as one channel shows it."""

    language: str
    channel: str
    reply: Reply

    def texts(self) -> list[str]:
        """Each text a person reads: on Telegram the message with its buttons, on USSD the
        screen; the brief as it stands, wherever it is shown."""
        labels = [choice.label for choice in self.reply.choices]
        if self.channel == "ussd":
            shown = render_screen(self.reply).text
        else:
            shown = "\n".join([self.reply.text, *labels])
        return [shown] if self.reply.brief is None else [shown, self.reply.brief]


def walk(language: str, context: DialogContext) -> list[Reply]:
    """Every reply reached from a fresh conversation, breadth first."""
    replies: list[Reply] = []
    start = replace(router.new_state(language), context=context)
    queue: deque[tuple[DialogState, Input]] = deque([(start, Input(InputKind.START))])
    seen = {_key(start)}

    def follow(transition: Transition) -> None:
        if transition.reply is not None:
            replies.append(transition.reply)
        state = replace(transition.state, context=context)
        # A language picked on the way has a walk of its own.
        if state.language == language and _key(state) not in seen:
            seen.add(_key(state))
            queue.extend((state, inp) for inp in answers_for(state))
            if state.step == "menu" and state.consented:
                for message in NOTIFICATIONS:  # held for the next dial, shown before the menu
                    replies.append(_reply(router.step(state, Input(InputKind.START), [message])))

    while queue:
        assert len(seen) < MOST_STATES, "the walk does not end: is a state keyed by a counter?"
        state, inp = queue.popleft()
        transition = router.step(state, inp)
        follow(transition)
        if transition.effect is not None:
            waiting = replace(transition.state, context=context)
            for outcome in outcomes_for(transition.effect, waiting):
                follow(router.resume(waiting, outcome))
    return replies


def _reply(transition: Transition) -> Reply:
    assert transition.reply is not None
    return transition.reply


@cache
def everything_shown() -> tuple[Shown, ...]:
    shown = [
        Shown(language, channel, reply)
        for language in SUPPORTED_LANGUAGES
        for channel, context in (("telegram", TELEGRAM), ("ussd", USSD))
        for reply in walk(language, context)
    ]
    # Telegram gets its notices pushed, as they happen.
    shown += [
        Shown(language, "telegram", render_notification(message, translator(language)))
        for language in SUPPORTED_LANGUAGES
        for message in NOTIFICATIONS
    ]
    return tuple(shown)


def test_every_reply_that_mentions_money_carries_the_warning() -> None:
    unwarned = {
        text
        for shown in everything_shown()
        for text in shown.texts()
        if MONEY.search(text) and not WARNING.search(text)
    }
    assert sorted(unwarned) == []


def test_no_reply_holds_a_link() -> None:
    assert sorted({t for s in everything_shown() for t in s.texts() if LINK.search(t)}) == []


def test_ussd_screens_fit_and_none_that_mentions_money_is_cut() -> None:
    on_phones = [shown.reply for shown in everything_shown() if shown.channel == "ussd"]
    assert len(on_phones) > 300
    assert [r for r in on_phones if len(render_screen(r).text) > SCREEN_LIMIT] == []
    cut = [
        body
        for reply in on_phones
        if MONEY.search(body := reply.brief if reply.brief is not None else reply.text)
        and not render_screen(reply).text.startswith(body)
    ]
    assert cut == []


def _pattern(text: str) -> re.Pattern[str]:
    """A catalog text as it appears once its placeholders are filled in."""
    literal = [re.escape(part) for part, _, _, _ in string.Formatter().parse(text)]
    return re.compile(".*?".join(literal), re.DOTALL)


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_the_walk_shows_every_message_that_mentions_money(language: str) -> None:
    """Keeps the test above honest: a new message about money that the walk does not
    reach fails here, until the walk (or the message) is changed."""
    money_texts = {
        text
        for message in source_messages()
        for text in as_shown(message, language)
        if MONEY.search(text)
    }
    assert money_texts, "no message mentions money: is the extraction broken?"
    seen = {text for s in everything_shown() if s.language == language for text in s.texts()}
    unreached = [text for text in money_texts if not any(map(_pattern(text).search, seen))]
    assert sorted(unreached) == []


# --- the status report, over a whole sandbox population ----------------------------------------


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_status_reports_of_a_population_warn_wherever_they_show_an_amount(language: str) -> None:
    population = generate_population(2000, seed=23)
    waiting = DialogState(step="status.waiting", language=language)
    with_amounts = shown_with_amounts = 0
    for household in population.households:
        report = StatusReport(
            quarter=population.quarter,
            name_masked=mask_name(household.members[0].name),
            household=household.summary(),
            programmes=household.programmes,
            updated_at=household.updated_at,
        )
        reply = _reply(router.resume(waiting, report))
        screen = render_screen(reply).text
        assert len(screen) <= SCREEN_LIMIT
        for text in (reply.text, screen):
            assert not MONEY.search(text) or WARNING.search(text), text
        with_amounts += any(p.status == "active" and p.amount_idr for p in report.programmes)
        shown_with_amounts += "Rp" in screen
    # The warning takes room, yet on nearly every screen the amounts still fit beside it.
    assert shown_with_amounts >= 0.9 * with_amounts > 100
