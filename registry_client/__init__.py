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
    Household,
    PhotoPart,
    ProgrammeStatus,
    Stage,
    StatusReport,
    SubmissionReceipt,
    TicketUpdate,
    UpdatesPage,
)

__all__ = [
    "STAGES",
    "Household",
    "PhotoPart",
    "ProgrammeStatus",
    "RegistryBadResponse",
    "RegistryClient",
    "RegistryError",
    "RegistryRejected",
    "RegistryUnavailable",
    "Stage",
    "StatusReport",
    "SubmissionReceipt",
    "TicketUpdate",
    "UpdatesPage",
]
