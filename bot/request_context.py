"""The id of the request or update being handled, for every log line written meanwhile.

A ContextVar follows the asyncio task that handles one USSD request or one Telegram
update, so concurrent requests never see each other's id.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from contextvars import ContextVar

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

# What a caller may send us as its own id: short and free of anything a log could misread.
_SANE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def current_request_id() -> str | None:
    return _request_id.get()


def new_request_id() -> str:
    """A short random id: enough to tell a day's requests apart, not a secret."""
    return secrets.token_hex(8)


def accepted_request_id(offered: str | None) -> str:
    """The caller's id when it is sane (≤ 64 of [A-Za-z0-9_-]), else a fresh one."""
    if offered is not None and _SANE_ID.fullmatch(offered):
        return offered
    return new_request_id()


@contextlib.contextmanager
def request_id_bound(request_id: str) -> Iterator[None]:
    """`request_id` is the current id inside the block, the previous one again after."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def trace_id(address_hash: str) -> str:
    """A short prefix of a keyed hash: enough to follow one person through the logs,
    never enough to find them without the key."""
    return address_hash[:8]
