"""What a status check can end in: the registry's report, a failure, or a refusal by
the limits that stop enumeration.

The domain owns these types; dialogs word them, the status service produces them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from registry_client.models import StatusReport


class LookupFailure(StrEnum):
    NOT_FOUND = "not_found"  # unknown NIK and wrong name alike: the registry is no oracle
    UNAVAILABLE = "unavailable"


class ThrottleReason(StrEnum):
    ADDRESS = "address"  # this chat or phone checked too often
    NIK = "nik"  # this NIK had too many checks with a name that did not match
    BUSY = "busy"  # the whole service is at its ceiling


@dataclass(frozen=True, slots=True)
class Throttled:
    """Refused before the registry was asked; `retry_after_s` says when a try can pass."""

    reason: ThrottleReason
    retry_after_s: int


LookupOutcome = StatusReport | LookupFailure | Throttled
