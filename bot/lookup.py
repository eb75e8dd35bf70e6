"""What a status check can end in: the registry's report, or one of three failures.

The domain owns these types; dialogs word them, the status service produces them.
"""

from __future__ import annotations

from enum import StrEnum

from registry_client.models import StatusReport


class LookupFailure(StrEnum):
    NOT_FOUND = "not_found"  # unknown NIK and wrong name alike: the registry is no oracle
    UNAVAILABLE = "unavailable"
    THROTTLED = "throttled"


LookupOutcome = StatusReport | LookupFailure
