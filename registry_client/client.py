"""Typed async client for the registry's wire contract (docs/registry-api.md).

Neither log lines nor exception messages ever carry a NIK or a name (UU PDP): they name the
operation, the attempt, the request id, the HTTP status and the field that was wrong, never
a value taken from a request or an answer.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Concatenate, Final, ParamSpec, Protocol, Self, TypeVar, cast

import aiohttp

from registry_client import wire
from registry_client.errors import (
    RegistryBadResponse,
    RegistryError,
    RegistryRejected,
    RegistryUnavailable,
)
from registry_client.models import (
    ChangesPage,
    PhotoPart,
    QuarterInfo,
    StatusReport,
    SubmissionReceipt,
    TicketUpdate,
    UpdatesPage,
)

logger = logging.getLogger(__name__)

_ATTEMPT: Final = "registry %s: attempt %d/%d request_id=%s"
_CHUNK_BYTES: Final = 64 * 1024
# Our own ids go into a header and a URL path: a plain token needs no escaping there.
_SUBMISSION_ID: Final = re.compile(r"[A-Za-z0-9-]{1,64}")
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
# A quarter goes into a URL path: only what a quarter looks like.
_QUARTER: Final = re.compile(r"[0-9]{4}Q[1-4]")
_MAX_CHANGES_PAGE: Final = 1000

_P = ParamSpec("_P")
_R = TypeVar("_R")


class RegistryObserver(Protocol):
    """Told how long each call took and, when it failed, with which error (for metrics).

    `call` is the method's name, one of a fixed few: never a value of the request.
    """

    def call_done(self, call: str, seconds: float, error: RegistryError | None) -> None: ...


def _observed(
    call: str,
) -> Callable[
    [Callable[Concatenate[RegistryClient, _P], Coroutine[Any, Any, _R]]],
    Callable[Concatenate[RegistryClient, _P], Coroutine[Any, Any, _R]],
]:
    """Time a whole call, retries and validation included, for the client's observer."""

    def decorate(
        method: Callable[Concatenate[RegistryClient, _P], Coroutine[Any, Any, _R]],
    ) -> Callable[Concatenate[RegistryClient, _P], Coroutine[Any, Any, _R]]:
        @functools.wraps(method)
        async def observed(client: RegistryClient, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            observer = client._observer
            if observer is None:
                return await method(client, *args, **kwargs)
            started = time.monotonic()
            try:
                result = await method(client, *args, **kwargs)
            except RegistryError as error:
                observer.call_done(call, time.monotonic() - started, error)
                raise
            observer.call_done(call, time.monotonic() - started, None)
            return result

        return observed

    return decorate


@dataclass(frozen=True, slots=True)
class _Request:
    """What one call sends, the same on every attempt."""

    method: str
    path: str
    operation: str
    json: Mapping[str, object] | None = None
    params: Mapping[str, str] | None = None
    multipart: aiohttp.MultipartWriter | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    content_type: str
    body: bytes
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class _Failure:
    """An attempt that a later one may get past: no answer in time, or HTTP 429 or 5xx."""

    what: str
    retry_after: float | None = None
    cause: BaseException | None = None


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
        max_answer_bytes: int = 1_048_576,
        observer: RegistryObserver | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError("timeout must be positive, retries and backoff not negative")
        if max_answer_bytes <= 0:
            raise ValueError("max_answer_bytes must be positive")
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._session = session
        self._owns_session = session is None
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._max_answer_bytes = max_answer_bytes
        self._observer = observer

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

    @_observed("ping")
    async def ping(self, *, timeout: float = 2.0) -> None:  # noqa: ASYNC109
        """Raise RegistryError unless the registry answers `GET /v1/health` with a 2xx within
        `timeout` seconds, in one attempt: a readiness probe, which checks the token too."""
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        await self._call(
            _Request("GET", "/v1/health", "health"), retries=0, attempt_timeout=timeout
        )

    @_observed("status_lookup")
    async def look_up_status(
        self, nik: str, name: str, channel: str, *, deadline: float | None = None
    ) -> StatusReport | None:
        """What the registry says about the household of `nik`; None when NIK and name
        do not match a registered person (the registry does not say which of the two).

        `deadline` bounds the whole call, retries included, in seconds: past it the call
        raises RegistryUnavailable instead of waiting on.
        """
        request = _Request(
            "POST",
            "/v1/status/lookup",
            "status lookup",
            json={"nik": nik, "name": name, "channel": channel},
        )
        document = await self._call_json(request, deadline=deadline)
        return wire.status_report(document, request.operation)

    @_observed("sample_people")
    async def sample_people(
        self, limit: int, programme: str | None = None
    ) -> list[tuple[str, str]]:
        """(NIK, name) pairs of registered people; only a sandbox registry answers this."""
        params = {"limit": str(limit)}
        if programme is not None:
            params["programme"] = programme
        request = _Request("GET", "/sandbox/people", "sandbox people", params=params)
        return wire.people(await self._call_json(request), request.operation)

    @_observed("submit")
    async def submit(
        self,
        submission_id: str,
        document: Mapping[str, object],
        photos: Sequence[PhotoPart],
        *,
        # A plain number, not asyncio.timeout: it bounds the one attempt, not the caller.
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> SubmissionReceipt:
        """File a submission and its photos; the receipt carries the registry's ticket.

        Exactly one attempt: the caller (an outbox) schedules the next one itself, and the
        Idempotency-Key makes a re-send return the first ticket instead of a second one.
        Raises RegistryRejected when the registry refuses for good (422), and
        RegistryUnavailable when a later attempt may succeed; its retry_after says when
        the registry asked to be called again. `timeout` defaults to the client's.
        """
        _check_submission_id(submission_id)
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive")
        request = _Request(
            "POST",
            "/v1/participation/submissions",
            "submission",
            multipart=_submission_form(document, photos),
            headers={"Idempotency-Key": submission_id},
        )
        answer = await self._call(request, retries=0, attempt_timeout=timeout)
        # 202: a new ticket; 200: this key was received before and keeps its first ticket.
        if answer.status not in (200, 202):
            raise RegistryBadResponse(f"{request.operation}: unexpected HTTP {answer.status}")
        receipt = _decode_json(answer, request.operation)
        return wire.receipt(receipt, request.operation, replayed=answer.status == 200)

    @_observed("ticket_updates")
    async def ticket_updates(self, cursor: str | None, *, limit: int = 500) -> UpdatesPage:
        """Tickets whose stage changed, oldest first, read on from `cursor` (None: from the
        start); the page's next_cursor is where the next call reads on."""
        if limit < 1:
            raise ValueError("limit must be positive")
        params = {"limit": str(limit)}
        if cursor is not None:
            params["cursor"] = cursor
        request = _Request("GET", "/v1/participation/updates", "ticket updates", params=params)
        return wire.updates_page(await self._call_json(request), request.operation)

    @_observed("ticket")
    async def ticket(self, submission_id: str) -> TicketUpdate | None:
        """The current stage of the ticket of `submission_id`; None when the registry has
        no such submission (HTTP 404 with an error document)."""
        _check_submission_id(submission_id)
        request = _Request("GET", f"/v1/participation/submissions/{submission_id}", "ticket")
        try:
            document = await self._call_json(request)
        except RegistryRejected as refused:
            if refused.http_status == 404:
                return None
            raise
        update = wire.ticket_update(document, request.operation)
        if update.submission_id != submission_id:
            raise RegistryBadResponse(f"{request.operation}: answer is about another submission")
        return update

    @_observed("quarters")
    async def quarters(self) -> tuple[QuarterInfo, ...]:
        """The quarters the registry has published, oldest first."""
        request = _Request("GET", "/v1/quarters", "quarters")
        return wire.quarters(await self._call_json(request), request.operation)

    @_observed("quarter_changes")
    async def quarter_changes(
        self, quarter: str, cursor: str | None, *, limit: int = _MAX_CHANGES_PAGE
    ) -> ChangesPage:
        """One page of the people whose household's decile or programmes changed in
        `quarter`, read on from `cursor` (None: from the start); the page's next_cursor is
        where the next call reads on, None after the last page.

        A quarter the registry has not published raises RegistryRejected (`not_found`,
        HTTP 404), a cursor it did not give out RegistryRejected (`invalid_request`, 400).
        """
        if not _QUARTER.fullmatch(quarter):
            raise ValueError("a quarter is written like 2026Q4")
        if not 1 <= limit <= _MAX_CHANGES_PAGE:
            raise ValueError(f"limit must be 1 to {_MAX_CHANGES_PAGE}")
        params = {"limit": str(limit)}
        if cursor is not None:
            params["cursor"] = cursor
        request = _Request(
            "GET", f"/v1/quarters/{quarter}/changes", "quarter changes", params=params
        )
        answer = await self._call(request)
        # Validated from the bytes: a page holds up to a thousand people (wire.changes_page).
        return wire.changes_page(_json_bytes(answer, request.operation), request.operation)

    def _http(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop, as aiohttp wants.
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _call_json(self, request: _Request, *, deadline: float | None = None) -> object:
        """The decoded JSON of a 2xx answer to a read-only request, retries allowed."""
        answer = await self._call(request, deadline=deadline)
        return _decode_json(answer, request.operation)

    async def _call(
        self,
        request: _Request,
        *,
        deadline: float | None = None,
        retries: int | None = None,
        attempt_timeout: float | None = None,
    ) -> _Answer:
        """The 2xx answer to `request`, with up to `retries` (default: the client's) more
        attempts after a failure a later attempt may get past.

        Retries only suit a request that is safe to repeat: a failed attempt may have
        reached the registry already.
        """
        retries = self._retries if retries is None else retries
        per_attempt = self._timeout if attempt_timeout is None else attempt_timeout
        give_up_at = None if deadline is None else time.monotonic() + deadline
        attempts = retries + 1
        last: _Failure | None = None
        for attempt in range(1, attempts + 1):
            budget = per_attempt
            if give_up_at is not None:
                budget = min(budget, give_up_at - time.monotonic())
            if budget <= 0:
                raise _unavailable(
                    request.operation, f"deadline passed after {attempt - 1} attempt(s)", last
                )
            outcome = await self._attempt(request, attempt, attempts, budget)
            if isinstance(outcome, _Answer):
                return outcome
            last = outcome
            if attempt < attempts:
                await self._wait_before_retry(attempt, last, give_up_at, per_attempt, request)
        raise _unavailable(
            request.operation, f"registry unavailable after {attempts} attempt(s)", last
        ) from (last.cause if last is not None else None)

    async def _attempt(
        self, request: _Request, attempt: int, attempts: int, budget: float
    ) -> _Answer | _Failure:
        """One attempt: a 2xx answer, a failure worth another attempt, or, raised, the
        exception for any other answer."""
        request_id = str(uuid.uuid4())
        where = (request.operation, attempt, attempts, request_id)
        logger.debug(_ATTEMPT, *where)
        started = time.monotonic()
        try:
            answer = await self._send(request, request_id, budget)
        except (aiohttp.ClientError, TimeoutError) as error:
            # The class name says enough (timeout, refused, reset) and carries no data.
            logger.warning(_ATTEMPT + " failed: %s", *where, type(error).__name__)
            return _Failure(type(error).__name__, cause=error)
        elapsed_ms = (time.monotonic() - started) * 1000
        logger.debug(_ATTEMPT + " status=%d elapsed_ms=%d", *where, answer.status, elapsed_ms)
        if 200 <= answer.status < 300:
            return answer
        if _worth_another_attempt(answer.status):
            logger.warning(
                _ATTEMPT + " status=%d retry_after=%s", *where, answer.status, answer.retry_after
            )
            return _Failure(f"HTTP {answer.status}", answer.retry_after)
        raise _refusal(answer, request.operation)

    async def _send(self, request: _Request, request_id: str, budget: float) -> _Answer:
        """One HTTP request, body read included, within `budget` seconds."""
        headers = {
            "Authorization": f"Bearer {self._token}",
            "X-Request-ID": request_id,
            "Accept": "application/json",
            **request.headers,
        }
        async with (
            asyncio.timeout(budget),
            self._http().request(
                request.method,
                f"{self._base_url}{request.path}",
                json=request.json,
                params=request.params,
                data=request.multipart,
                headers=headers,
                allow_redirects=False,
            ) as response,
        ):
            # The body of a 429 or 5xx is never looked at, so never read.
            worth_reading = not _worth_another_attempt(response.status)
            return _Answer(
                status=response.status,
                content_type=response.content_type,
                body=await self._read_body(response, request.operation) if worth_reading else b"",
                retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
            )

    async def _read_body(self, response: aiohttp.ClientResponse, operation: str) -> bytes:
        """The body, refused as soon as it passes max_answer_bytes: a broken registry or a
        proxy must not fill the memory. Counted after decompression, so a small gzip bomb
        is refused too."""
        cap = self._max_answer_bytes
        if response.content_length is not None and response.content_length > cap:
            response.close()  # the rest is never read; the connection is not reused
            raise _too_large(operation, cap)
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
            body += chunk
            if len(body) > cap:
                response.close()
                raise _too_large(operation, cap)
        return bytes(body)

    async def _wait_before_retry(
        self,
        attempt: int,
        last: _Failure,
        give_up_at: float | None,
        attempt_timeout: float,
        request: _Request,
    ) -> None:
        # Jitter spreads the retries of many clients that failed at the same moment.
        delay = self._backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0)  # noqa: S311
        if last.retry_after is not None:
            delay = max(delay, last.retry_after)
        # Without a deadline, a wait longer than one request's timeout is the caller's to
        # schedule (an outbox retries later); a USSD caller's deadline is usually tighter.
        room = attempt_timeout if give_up_at is None else give_up_at - time.monotonic()
        if delay >= room:
            raise _unavailable(
                request.operation,
                f"gave up after {attempt} attempt(s), the next one would come too late",
                last,
            )
        await asyncio.sleep(delay)


def _worth_another_attempt(status: int) -> bool:
    return status == 429 or status >= 500


def _unavailable(operation: str, what: str, last: _Failure | None) -> RegistryUnavailable:
    failure = "no attempt made" if last is None else last.what
    return RegistryUnavailable(
        f"{operation}: {what} (last: {failure})",
        retry_after=None if last is None else last.retry_after,
    )


def _too_large(operation: str, cap: int) -> RegistryBadResponse:
    return RegistryBadResponse(f"{operation}: answer larger than {cap} bytes")


def _check_submission_id(submission_id: str) -> None:
    if not _SUBMISSION_ID.fullmatch(submission_id):
        raise ValueError("a submission id is 1 to 64 letters, digits or hyphens")


def _submission_form(
    document: Mapping[str, object], photos: Sequence[PhotoPart]
) -> aiohttp.MultipartWriter:
    """The multipart body of a submission: its JSON first, then one part per photo."""
    form = aiohttp.MultipartWriter("form-data")
    submission = json.dumps(document, ensure_ascii=False, allow_nan=False).encode()
    part = form.append(submission, {"Content-Type": "application/json"})
    part.set_content_disposition("form-data", name="submission")
    for photo in photos:
        # The hash names the file in a header: it must be what a hash looks like.
        if not _SHA256.fullmatch(photo.sha256):
            raise ValueError("a photo's sha256 must be 64 lowercase hex digits")
        part = form.append(photo.content, {"Content-Type": photo.content_type})
        part.set_content_disposition("form-data", name="photo", filename=f"{photo.sha256}.jpg")
    return form


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


def _json_bytes(answer: _Answer, operation: str) -> bytes:
    if answer.content_type != "application/json":
        raise RegistryBadResponse(f"{operation}: answer is not JSON")
    return answer.body


def _decode_json(answer: _Answer, operation: str) -> object:
    body = _json_bytes(answer, operation)
    try:
        return cast(object, json.loads(body))
    except (UnicodeDecodeError, ValueError):
        pass
    # Raised out here, not from the except block: a JSON error keeps the whole document,
    # so it must be neither __cause__ nor __context__ of what may end up in a log.
    raise RegistryBadResponse(f"{operation}: answer is malformed JSON")


def _refusal(answer: _Answer, operation: str) -> RegistryError:
    """The exception for a 4xx answer (other than 429), or any other unexpected status."""
    try:
        document = _decode_json(answer, operation)
    except RegistryBadResponse:
        return RegistryBadResponse(f"{operation}: HTTP {answer.status} without an error document")
    code = wire.error_code(document)
    if code is None:
        return RegistryBadResponse(f"{operation}: HTTP {answer.status} without a valid error code")
    return RegistryRejected(code, http_status=answer.status)
