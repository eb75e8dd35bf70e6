"""Exceptions of the registry client, catchable at the level a caller cares about.

Messages never carry a NIK or a name: they may end up in logs.
"""


class RegistryError(Exception):
    """Anything that went wrong talking to the registry."""


class RegistryUnavailable(RegistryError):
    """The registry could not answer now (network, timeout, 5xx, 429); trying later may work."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RegistryRejected(RegistryError):
    """The registry refused the request for good (4xx with an error code)."""

    def __init__(self, code: str, *, http_status: int) -> None:
        super().__init__(f"registry refused the request: {code} (HTTP {http_status})")
        self.code = code
        self.http_status = http_status


class RegistryBadResponse(RegistryError):
    """The registry answered something that does not follow the contract."""
