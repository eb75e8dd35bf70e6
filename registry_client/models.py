"""Typed values of the registry wire contract (docs/registry-api.md), for client and sandbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

PROGRAMME_CODES: Final = ("PKH", "BPNT", "PBI-JK", "BLT", "PIP")

REASON_CODES: Final = (
    "decile_above_cutoff",
    "not_verified_siak",
    "deceased",
    "moved_out",
    "duplicate",
    "graduated",
    "objection_upheld",
)

ProgrammeState = Literal["active", "ended", "refused"]


@dataclass(frozen=True, slots=True)
class Household:
    decile: int
    kecamatan_code: str
    members: int


@dataclass(frozen=True, slots=True)
class ProgrammeStatus:
    code: str
    status: ProgrammeState
    since: str | None = None
    until: str | None = None
    amount_idr: int | None = None
    period: str | None = None
    reason_code: str | None = None


@dataclass(frozen=True, slots=True)
class StatusReport:
    """What the registry says about a household whose NIK and name matched."""

    quarter: str
    name_masked: str
    household: Household
    programmes: tuple[ProgrammeStatus, ...]
    updated_at: datetime


# --- participation queue (docs/registry-api.md sections 2 and 3) ------------------------------

SUBMISSION_KINDS: Final = ("proposal", "objection", "correction")

# Where a ticket stands: received → in_verification → accepted | rejected; received → withdrawn.
Stage = Literal["received", "in_verification", "accepted", "rejected", "withdrawn"]
STAGES: Final[tuple[Stage, ...]] = (
    "received",
    "in_verification",
    "accepted",
    "rejected",
    "withdrawn",
)
OPEN_STAGES: Final[tuple[Stage, ...]] = ("received", "in_verification")

# Why a submission is refused for good (HTTP 422); the filer is told in plain words.
SUBMISSION_REFUSALS: Final = (
    "invalid_nik",
    "photo_missing",
    "photo_unreadable",
    "duplicate_open_ticket",
    "outside_area",
)

# Why a verified ticket was rejected (stage `rejected`).
TICKET_REASON_CODES: Final = (
    "evidence_insufficient",
    "field_check_disagrees",
    "outside_criteria",
    "duplicate",
)


@dataclass(frozen=True, slots=True)
class PhotoPart:
    """One photo of a submission, sent as a `photo` part in the order of `photos`."""

    sha256: str
    role: str
    content: bytes
    content_type: str = "image/jpeg"

    def __repr__(self) -> str:  # a house photo is personal data: keep bytes out of logs
        return f"PhotoPart(role={self.role!r}, sha256={self.sha256[:12]}…, {len(self.content)} B)"


@dataclass(frozen=True, slots=True)
class SubmissionReceipt:
    """The registry's answer to a submission: its ticket. `replayed` is True when the
    same Idempotency-Key had been received before (HTTP 200 instead of 202)."""

    ticket: str
    status: str
    replayed: bool


@dataclass(frozen=True, slots=True)
class TicketUpdate:
    """A ticket's stage as the registry reports it."""

    ticket: str
    submission_id: str
    stage: Stage
    reason_code: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class UpdatesPage:
    """One page of `GET /v1/participation/updates`; `next_cursor` reads on from here."""

    items: tuple[TicketUpdate, ...]
    next_cursor: str | None


# --- quarterly change feed (docs/registry-api.md section 4) -----------------------------------


@dataclass(frozen=True, slots=True)
class QuarterInfo:
    """A quarter the registry has published."""

    quarter: str
    published_at: datetime


@dataclass(frozen=True, slots=True)
class HouseholdState:
    """A household's decile and the codes of its active programmes, before or after a
    quarter's change."""

    decile: int
    programmes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One person whose household's decile or programmes changed in a quarter."""

    nik: str
    previous: HouseholdState
    current: HouseholdState
    reason_code: str | None

    def __repr__(self) -> str:  # a NIK is personal data (UU PDP): keep it out of logs
        return (
            f"StatusChange(nik=<hidden>, previous={self.previous!r}, "
            f"current={self.current!r}, reason_code={self.reason_code!r})"
        )


@dataclass(frozen=True, slots=True)
class ChangesPage:
    """One page of `GET /v1/quarters/{quarter}/changes`; `next_cursor` reads on from
    here, None after the quarter's last page."""

    items: tuple[StatusChange, ...]
    next_cursor: str | None
