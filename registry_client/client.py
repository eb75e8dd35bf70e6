"""Typed async client for the registry's wire contract (REGISTRY_API.md).

Neither log lines nor exception messages ever carry a NIK or a name (UU PDP): they name the
operation, the attempt, the request id, the HTTP status and the field that was wrong, never
a value taken from a request or an answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Final, Self, cast

import aiohttp

from registry_client.errors import RegistryBadResponse, RegistryRejected, RegistryUnavailable
from registry_client.models import (
    Household,
    ProgrammeState,
    ProgrammeStatus,
    StatusReport,
)

logger = logging.getLogger(__name__)

_QUARTER: Final = re.compile(r"[0-9]{4}Q[1-4]")
_KECAMATAN: Final = re.compile(r"[0-9]{6}")
_NIK: Final = re.compile(r"[0-9]{16}")
# Codes are checked for shape, not membership: a programme or reason the registry adds
# later must not break every look-up; the bot words unknown ones generically.
_PROGRAMME_CODE: Final = re.compile(r"[A-Z][A-Z0-9-]{0,15}")
# Error codes end up in exception messages and logs; anything else than a plain code
# (which could echo what was sent) is treated as a broken answer.
_ERROR_CODE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_STATES: Final[tuple[ProgrammeState, ...]] = ("active", "ended", "refused")


_ATTEMPT: Final = "registry %s: attempt %d/%d request_id=%s"


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    content_type: str
    body: bytes
    retry_after: float | None


class RegistryClient:
    """Talks to one registry over HTTP; safe to share between tasks of one event loop."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.2,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError("timeout must be positive, retries and backoff not negative")
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._session = session
        self._owns_session = session is None
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff

    async def close(self) -> None:
        """Close the HTTP session if this client created it; a shared one is left open."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def look_up_status(
        self, nik: str, name: str, channel: str, *, deadline: float | None = None
    ) -> StatusReport | None:
        """What the registry says about the household of `nik`; None when NIK and name
        do not match a registered person (the registry does not say which of the two).

        `deadline` bounds the whole call, retries included, in seconds: past it the call
        raises RegistryUnavailable instead of waiting on.
        """
        answer = await self._call(
            "POST",
            "/v1/status/lookup",
            operation="status lookup",
            body={"nik": nik, "name": name, "channel": channel},
            deadline=deadline,
        )
        return _parse_status(answer)

    async def sample_people(
        self, limit: int, programme: str | None = None
    ) -> list[tuple[str, str]]:
        """(NIK, name) pairs of registered people; only a sandbox registry answers this."""
        params = {"limit": str(limit)}
        if programme is not None:
            params["programme"] = programme
        answer = await self._call(
            "GET", "/sandbox/people", operation="sandbox people", params=params
        )
        return _parse_people(answer)

    def _http(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop, as aiohttp wants.
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        body: Mapping[str, object] | None = None,
        params: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> object:
        """One read-only call with bounded retries; returns the decoded JSON of a 2xx answer.

        Only for calls that are safe to repeat: a retried request may have reached the
        registry already.
        """
        give_up_at = None if deadline is None else time.monotonic() + deadline
        attempts = self._retries + 1
        failure = "no attempt made"
        retry_after: float | None = None
        last_error: BaseException | None = None
        for attempt in range(1, attempts + 1):
            budget = self._timeout
            if give_up_at is not None:
                budget = min(budget, give_up_at - time.monotonic())
                if budget <= 0:
                    raise RegistryUnavailable(
                        f"{operation}: deadline passed after {attempt - 1} attempt(s) "
                        f"(last: {failure})",
                        retry_after=retry_after,
                    )
            request_id = str(uuid.uuid4())
            where = (operation, attempt, attempts, request_id)
            logger.debug(_ATTEMPT, *where)
            started = time.monotonic()
            try:
                answer = await self._send(method, path, body, params, request_id, budget)
            except (aiohttp.ClientError, TimeoutError) as error:
                # The class name says enough (timeout, refused, reset) and carries no data.
                failure, retry_after, last_error = type(error).__name__, None, error
                logger.warning(_ATTEMPT + " failed: %s", *where, failure)
            else:
                elapsed_ms = (time.monotonic() - started) * 1000
                logger.debug(
                    _ATTEMPT + " status=%d elapsed_ms=%d", *where, answer.status, elapsed_ms
                )
                if 200 <= answer.status < 300:
                    return _decode_json(answer.body, answer.content_type, operation)
                if answer.status != 429 and answer.status < 500:
                    raise _refusal(answer.status, answer.body, answer.content_type, operation)
                failure, retry_after, last_error = f"HTTP {answer.status}", answer.retry_after, None
                logger.warning(
                    _ATTEMPT + " status=%d retry_after=%s", *where, answer.status, retry_after
                )
            if attempt == attempts:
                break
            await self._wait_before_retry(attempt, retry_after, give_up_at, operation, failure)
        raise RegistryUnavailable(
            f"{operation}: registry unavailable after {attempts} attempt(s) (last: {failure})",
            retry_after=retry_after,
        ) from last_error

    async def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, object] | None,
        params: Mapping[str, str] | None,
        request_id: str,
        budget: float,
    ) -> _Answer:
        """One HTTP request, body read included, within `budget` seconds."""
        headers = {
            "Authorization": f"Bearer {self._token}",
            "X-Request-ID": request_id,
            "Accept": "application/json",
        }
        async with (
            asyncio.timeout(budget),
            self._http().request(
                method,
                f"{self._base_url}{path}",
                json=body,
                params=params,
                headers=headers,
                allow_redirects=False,
            ) as response,
        ):
            return _Answer(
                status=response.status,
                content_type=response.content_type,
                body=await response.read(),
                retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
            )

    async def _wait_before_retry(
        self,
        attempt: int,
        retry_after: float | None,
        give_up_at: float | None,
        operation: str,
        failure: str,
    ) -> None:
        # Jitter spreads the retries of many clients that failed at the same moment.
        delay = self._backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)  # noqa: S311
        if retry_after is not None:
            delay = max(delay, retry_after)
        # Without a deadline, a wait longer than one request's timeout is the caller's to
        # schedule (an outbox retries later); a USSD caller's deadline is usually tighter.
        room = self._timeout if give_up_at is None else give_up_at - time.monotonic()
        if delay >= room:
            raise RegistryUnavailable(
                f"{operation}: gave up after {attempt} attempt(s), the next one would come "
                f"too late (last: {failure})",
                retry_after=retry_after,
            )
        await asyncio.sleep(delay)


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(seconds, 0.0)


def _decode_json(raw: bytes, content_type: str, operation: str) -> object:
    if content_type != "application/json":
        raise RegistryBadResponse(f"{operation}: answer is not JSON")
    try:
        return cast(object, json.loads(raw))
    except (UnicodeDecodeError, ValueError):
        # `from None`: a JSON error keeps the whole document, which must not reach a log.
        raise RegistryBadResponse(f"{operation}: answer is malformed JSON") from None


def _refusal(status: int, raw: bytes, content_type: str, operation: str) -> Exception:
    """The exception for a 4xx answer (other than 429)."""
    try:
        document = _decode_json(raw, content_type, operation)
    except RegistryBadResponse:
        return RegistryBadResponse(f"{operation}: HTTP {status} without an error document")
    error = document.get("error") if isinstance(document, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(code, str) or not _ERROR_CODE.fullmatch(code):
        return RegistryBadResponse(f"{operation}: HTTP {status} without a valid error code")
    return RegistryRejected(code, http_status=status)


# --- strict parsing of answers ----------------------------------------------------------


def _bad(where: str, expected: str) -> RegistryBadResponse:
    return RegistryBadResponse(f"malformed registry answer: {where} must be {expected}")


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _bad(where, "an object")
    return cast(dict[str, object], value)


def _integer(document: dict[str, object], key: str, where: str, low: int, high: int) -> int:
    value = document.get(key)
    # bool is an int in Python, but `true` is no decile.
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _bad(f"{where}.{key}", f"an integer from {low} to {high}")
    return value


def _matching(
    document: dict[str, object], key: str, where: str, pattern: re.Pattern[str], expected: str
) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _bad(f"{where}.{key}", expected)
    return value


def _quarter(document: dict[str, object], key: str, where: str, *, required: bool) -> str | None:
    if document.get(key) is None and not required:
        return None
    return _matching(document, key, where, _QUARTER, "a quarter like 2026Q4")


def _choice(
    document: dict[str, object], key: str, where: str, allowed: tuple[str, ...], *, required: bool
) -> str | None:
    value = document.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise _bad(f"{where}.{key}", f"one of {', '.join(allowed)}")
    return value


def _reason_code(document: dict[str, object], where: str, *, required: bool) -> str | None:
    if document.get("reason_code") is None and not required:
        return None
    return _matching(document, "reason_code", where, _ERROR_CODE, "a reason code like deceased")


def _timestamp(document: dict[str, object], key: str, where: str) -> datetime:
    value = document.get(key)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.utcoffset() is not None:
            return parsed
    raise _bad(f"{where}.{key}", "an ISO-8601 time with a UTC offset")


def _parse_status(answer: object) -> StatusReport | None:
    document = _object(answer, "answer")
    found = document.get("found")
    if not isinstance(found, bool):
        raise _bad("answer.found", "true or false")
    if not found:
        return None
    name_masked = document.get("name_masked")
    if not isinstance(name_masked, str) or not name_masked:
        raise _bad("answer.name_masked", "a non-empty string")
    household = _object(document.get("household"), "answer.household")
    programmes = document.get("programmes")
    if not isinstance(programmes, list):
        raise _bad("answer.programmes", "a list")
    return StatusReport(
        quarter=_matching(document, "quarter", "answer", _QUARTER, "a quarter like 2026Q4"),
        name_masked=name_masked,
        household=Household(
            decile=_integer(household, "decile", "answer.household", 1, 10),
            kecamatan_code=_matching(
                household, "kecamatan_code", "answer.household", _KECAMATAN, "a 6-digit code"
            ),
            members=_integer(household, "members", "answer.household", 1, 99),
        ),
        programmes=tuple(
            _programme(item, f"answer.programmes[{index}]") for index, item in enumerate(programmes)
        ),
        updated_at=_timestamp(document, "updated_at", "answer"),
    )


def _programme(item: object, where: str) -> ProgrammeStatus:
    document = _object(item, where)
    code = _matching(document, "code", where, _PROGRAMME_CODE, "a programme code like PKH")
    status = cast(ProgrammeState, _choice(document, "status", where, _STATES, required=True))
    amount = document.get("amount_idr")
    if amount is not None:
        amount = _integer(document, "amount_idr", where, 0, 10**12)
    return ProgrammeStatus(
        code=code,
        status=status,
        # What each state must say: since when it runs, or until when and why it stopped.
        since=_quarter(document, "since", where, required=status == "active"),
        until=_quarter(document, "until", where, required=status == "ended"),
        amount_idr=amount,
        period=_quarter(document, "period", where, required=False),
        reason_code=_reason_code(document, where, required=status != "active"),
    )


def _parse_people(answer: object) -> list[tuple[str, str]]:
    document = _object(answer, "answer")
    items = document.get("items")
    if not isinstance(items, list):
        raise _bad("answer.items", "a list")
    people = []
    for index, item in enumerate(items):
        person = _object(item, f"answer.items[{index}]")
        nik = _matching(person, "nik", f"answer.items[{index}]", _NIK, "a 16-digit NIK")
        name = person.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"answer.items[{index}].name", "a non-empty string")
        people.append((nik, name))
    return people
