"""USSD: aggregator requests → dialog inputs, replies → screens of at most 160 characters.

The core (`UssdService`, `render_screen`) knows nothing of any aggregator's wire format;
`parse_africas_talking` / `format_africas_talking` are the first such format. Another
aggregator needs only its own pair of functions over the same core.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from bot.dialog_engine import DialogEngine, Turn
from bot.dialogs.model import Expect, Input, InputKind, Reply
from bot.i18n import DEFAULT_LANGUAGE, translator
from handlers.phone import normalize_phone

log = logging.getLogger(__name__)

CHANNEL = "ussd"
SCREEN_LIMIT = 160
# On top of the registry budget: time for the database before the gateway gives up on us.
_STORAGE_ALLOWANCE_S = 1.5


class BadUssdRequest(ValueError):
    """The aggregator's request lacks what a USSD exchange needs."""


@dataclass(frozen=True, slots=True)
class UssdRequest:
    session_id: str
    phone: str
    service_code: str
    answers: tuple[str, ...]  # every answer of the session so far; none: just dialled

    def __repr__(self) -> str:
        return f"UssdRequest(session={self.session_id!r})"


@dataclass(frozen=True, slots=True)
class UssdScreen:
    text: str
    ends: bool


def input_for(answer: str) -> Input:
    """What a USSD reply means: `0` goes back, `00` goes home, the rest is typed text."""
    answer = answer.strip()
    if answer == "0":
        return Input(InputKind.COMMAND, "back")
    if answer == "00":
        return Input(InputKind.COMMAND, "home")
    return Input(InputKind.TEXT, answer)


def render_screen(reply: Reply) -> UssdScreen:
    """A reply as one screen: body, numbered choices, navigation; never over the limit."""
    t = translator(reply.language)
    # A feature phone cannot send a photo or a location: such a screen ends the session
    # (its text says where to finish the step).
    ends = reply.expects in (Expect.NOTHING, Expect.PHOTO, Expect.LOCATION)
    body = reply.brief if reply.brief is not None else reply.text
    lines = [] if ends else [f"{n} {choice.label}" for n, choice in enumerate(reply.choices, 1)]
    if reply.expects is Expect.TEXT:
        lines.append(t.gettext("0 Back 00 Menu"))
    tail = "\n".join(lines)
    room = SCREEN_LIMIT - (len(tail) + 1 if tail else 0)
    if len(body) > room:
        log.warning("USSD screen over %d characters, shortened", SCREEN_LIMIT)
        body = body[: max(room - 1, 0)].rstrip() + "…"
    return UssdScreen(text=f"{body}\n{tail}" if tail else body, ends=ends)


def unavailable_screen(language: str = DEFAULT_LANGUAGE) -> UssdScreen:
    t = translator(language)
    return UssdScreen(t.gettext("The service is busy. Please dial again in a few minutes."), True)


class UssdService:
    """Answers USSD requests through the dialog engine within the gateway's patience."""

    def __init__(self, engine: DialogEngine, *, lookup_budget_s: float) -> None:
        self._engine = engine
        self._lookup_budget_s = lookup_budget_s

    async def answer(self, request: UssdRequest) -> UssdScreen:
        # One conversation per phone: a new dial starts at the top, while the language
        # and consent chosen on an earlier call are kept. The gateway sends the whole
        # session each time; the engine applies only the answers it has not seen.
        inputs = (Input(InputKind.START), *(input_for(answer) for answer in request.answers))
        try:
            async with asyncio.timeout(self._lookup_budget_s + _STORAGE_ALLOWANCE_S):
                reply = await self._engine.handle_turn(
                    CHANNEL,
                    request.phone,
                    Turn(request.session_id, inputs),
                    lookup_budget_s=self._lookup_budget_s,
                )
        except TimeoutError:
            log.warning("USSD answer exceeded its time budget")
            return unavailable_screen()
        return render_screen(reply)


# Longer fields are no USSD request: refuse them before any work.
FIELD_LIMITS = {"sessionId": 128, "phoneNumber": 32, "serviceCode": 32, "text": 2000}
# The longest real session (a filing with its review) has a few dozen answers.
MAX_ANSWERS = 100


def parse_africas_talking(form: Mapping[str, str]) -> UssdRequest:
    """Africa's Talking callback: `text` holds every answer so far, joined by `*`."""
    for name, limit in FIELD_LIMITS.items():
        if len(form.get(name, "")) > limit:
            raise BadUssdRequest(f"{name} is longer than {limit} characters")
    session_id = form.get("sessionId", "").strip()
    if not session_id:
        raise BadUssdRequest("sessionId is missing")
    phone = normalize_phone(form.get("phoneNumber", ""))
    if phone is None:
        # The conversation and the limits are kept per phone: without one, nothing is.
        raise BadUssdRequest("phoneNumber is missing or not a phone number")
    text = form.get("text", "")
    if text.count("*") >= MAX_ANSWERS:
        raise BadUssdRequest(f"text holds more than {MAX_ANSWERS} answers")
    return UssdRequest(
        session_id=session_id,
        phone=phone,
        service_code=form.get("serviceCode", "").strip(),
        answers=() if text == "" else tuple(text.split("*")),
    )


def format_africas_talking(screen: UssdScreen) -> str:
    return ("END " if screen.ends else "CON ") + screen.text
