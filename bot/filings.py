"""Filings as the domain sees them: what a person filed, what can come of it, and the
document the registry's participation queue receives (docs/registry-api.md, section 2).

Pure: values in, values out. Storage and delivery live in filing_service and outbox.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal

FilingKind = Literal["proposal", "objection", "correction"]

# Our own stages around the registry's: `queued` until the registry answers, `refused`
# when it refused the filing for good (HTTP 422).
QUEUED: Final = "queued"
REFUSED: Final = "refused"
OPEN_STAGES: Final = (QUEUED, "received", "in_verification")

# Crockford's base-32 alphabet: no I, L, O or U to misread on a small screen.
_TICKET_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TICKET_PREFIX: Final = "BSB-"


def new_ticket_number() -> str:
    """Our ticket number, shown at once: BSB- and 8 unambiguous characters."""
    return TICKET_PREFIX + "".join(secrets.choice(_TICKET_ALPHABET) for _ in range(8))


@dataclass(frozen=True, slots=True)
class Location:
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class FilingPhoto:
    sha256: str
    role: str


@dataclass(frozen=True, slots=True)
class FilingDraft:
    """A filing the person confirmed, ready to be stored and queued."""

    kind: FilingKind
    language: str
    subject_nik: str | None
    subject_name: str | None = None
    subject_kk: str | None = None
    reason_code: str | None = None
    text: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    photos: tuple[FilingPhoto, ...] = ()
    location: Location | None = None
    filer_kecamatan: str | None = None

    def __repr__(self) -> str:  # NIK, name and free text stay out of logs
        return f"FilingDraft(kind={self.kind!r}, photos={len(self.photos)})"


@dataclass(frozen=True, slots=True)
class Filer:
    """Who files: a channel and an address (chat id, phone number) and its keyed hash."""

    channel: str
    address: str
    address_hash: str
    facilitator_id: str | None = None

    def __repr__(self) -> str:
        return f"Filer(channel={self.channel!r})"


class FilingRefusal(StrEnum):
    TOO_MANY_TODAY = "too_many_today"
    ALREADY_OPEN = "already_open"
    OUTSIDE_AREA = "outside_area"


@dataclass(frozen=True, slots=True)
class FilingAccepted:
    ticket: str


@dataclass(frozen=True, slots=True)
class FilingRefused:
    reason: FilingRefusal
    ticket: str | None = None  # the open ticket, when the refusal is a duplicate


FilingOutcome = FilingAccepted | FilingRefused


@dataclass(frozen=True, slots=True)
class TicketEvent:
    stage: str
    reason_code: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class TicketSummary:
    ticket: str
    kind: FilingKind
    stage: str
    reason_code: str | None
    registry_ticket: str | None
    filed_at: datetime


@dataclass(frozen=True, slots=True)
class TicketHistory:
    summary: TicketSummary
    events: tuple[TicketEvent, ...]


@dataclass(frozen=True, slots=True)
class TicketList:
    tickets: tuple[TicketSummary, ...]


class AreaRule(StrEnum):
    """How close an objector must live to the recipient, by the NIKs' region codes."""

    KECAMATAN = "kecamatan"
    KABUPATEN = "kabupaten"
    PROVINCE = "province"
    OFF = "off"


_AREA_DIGITS: Final = {
    AreaRule.KECAMATAN: 6,
    AreaRule.KABUPATEN: 4,
    AreaRule.PROVINCE: 2,
    AreaRule.OFF: 0,
}


def same_area(rule: AreaRule, filer_nik: str, subject_nik: str) -> bool:
    """True when the two NIKs were issued in the same area under `rule`."""
    digits = _AREA_DIGITS[rule]
    return filer_nik[:digits] == subject_nik[:digits]


def submission_document(
    filing_id: str, draft: FilingDraft, filer: Filer, filer_ref: str, created_at: datetime
) -> dict[str, object]:
    """The `submission` part of a participation-queue request."""
    fields: dict[str, object] = dict(draft.fields)
    if draft.location is not None:
        fields["location"] = {"lat": draft.location.lat, "lon": draft.location.lon}
    if draft.filer_kecamatan is not None:
        fields["filer_kecamatan"] = draft.filer_kecamatan
    return {
        "id": filing_id,
        "kind": draft.kind,
        "created_at": created_at.isoformat(),
        "language": draft.language,
        "subject": {"nik": draft.subject_nik, "name": draft.subject_name, "kk": draft.subject_kk},
        "filer": {
            "channel": "facilitator" if filer.facilitator_id else filer.channel,
            "ref": filer_ref,
            "facilitator_id": filer.facilitator_id,
        },
        "reason_code": draft.reason_code,
        "text": draft.text,
        "fields": fields,
        "photos": [
            {"sha256": photo.sha256, "role": photo.role, "content_type": "image/jpeg"}
            for photo in draft.photos
        ],
    }
