"""Typed values of the registry's wire contract (REGISTRY_API.md), shared by client and sandbox."""

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
