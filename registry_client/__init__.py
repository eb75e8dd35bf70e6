"""The only code that talks to the DTSEN registry: a typed async client and a sandbox server."""

from registry_client.client import RegistryClient
from registry_client.errors import (
    RegistryBadResponse,
    RegistryError,
    RegistryRejected,
    RegistryUnavailable,
)
from registry_client.models import (
    STAGES,
    ChangesPage,
    Household,
    HouseholdState,
    PhotoPart,
    ProgrammeStatus,
    QuarterInfo,
    Stage,
    StatusChange,
    StatusReport,
    SubmissionReceipt,
    TicketUpdate,
    UpdatesPage,
)

__all__ = [
    "STAGES",
    "ChangesPage",
    "Household",
    "HouseholdState",
    "PhotoPart",
    "ProgrammeStatus",
    "QuarterInfo",
    "RegistryBadResponse",
    "RegistryClient",
    "RegistryError",
    "RegistryRejected",
    "RegistryUnavailable",
    "Stage",
    "StatusChange",
    "StatusReport",
    "SubmissionReceipt",
    "TicketUpdate",
    "UpdatesPage",
]
