"""The sandbox's participation queue (docs/registry-api.md §2, §3, §5): submissions read as
streamed multipart, numbered tickets with stages, the feed of stage changes, and the
sandbox-only tools to look at the queue and move tickets as a field verifier would."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final, TypeGuard

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from registry_client.models import (
    OPEN_STAGES,
    STAGES,
    SUBMISSION_KINDS,
    TICKET_REASON_CODES,
    Stage,
    TicketUpdate,
)
from registry_client.sandbox.population import REFERENCE_DATE, WIB, Population

SUBMISSIONS_PATH: Final = "/v1/participation/submissions"
MAX_BODY_BYTES: Final = 40 * 1024 * 1024
MAX_PHOTO_BYTES: Final = 12 * 1024 * 1024
MAX_PHOTOS: Final = 10
_MAX_DOCUMENT_BYTES: Final = 256 * 1024
_MAX_UPDATES: Final = 1000
_DEFAULT_UPDATES: Final = 500
_CHUNK: Final = 64 * 1024
_MAX_TEXT: Final = 256

_KEY: Final = re.compile(r"[A-Za-z0-9-]{1,64}")
_SIXTEEN_DIGITS: Final = re.compile(r"[0-9]{16}")
_KECAMATAN: Final = re.compile(r"[0-9]{6}")
_SHA256: Final = re.compile(r"[0-9a-fA-F]{64}")
_LIMIT: Final = re.compile(r"[0-9]{1,4}")
_CURSOR: Final = re.compile(r"[A-Za-z0-9_-]{2,24}")
_POSITION: Final = re.compile(r"u(0|[1-9][0-9]{0,15})")
_JPEG_START: Final = b"\xff\xd8\xff"
_FILER_CHANNELS: Final = ("telegram", "ussd", "facilitator")
_PROPOSAL_ROLES: Final = frozenset({"house_front", "house_inside"})
_MOVES: Final[frozenset[tuple[Stage, Stage]]] = frozenset(
    {
        ("received", "in_verification"),
        ("received", "withdrawn"),
        ("in_verification", "accepted"),
        ("in_verification", "rejected"),
    }
)
# What a broken multipart body raises while it is read; answered 400, never 500.
_MALFORMED: Final = (ValueError, RuntimeError, HttpProcessingError, OSError)


class Refusal(Exception):
    """A request the sandbox refuses, answered with `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _invalid(message: str) -> Refusal:
    return Refusal(400, "invalid_request", message)


def _refused(code: str, message: str) -> Refusal:
    return Refusal(422, code, message)


def _too_large(message: str) -> Refusal:
    return Refusal(413, "payload_too_large", message)


async def json_object(request: web.Request) -> dict[str, object]:
    """The request body as a JSON object, or a 400 refusal."""
    try:
        body = json.loads(await request.read(), parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise _invalid("The body must be JSON.") from None
    if not isinstance(body, dict):
        raise _invalid("The body must be a JSON object.")
    return body


# --- the queue ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeclaredPhoto:
    """A photo as the submission document announces it."""

    sha256: str
    role: str
    content_type: str


@dataclass(frozen=True, slots=True)
class ReceivedPhoto:
    """What the sandbox keeps of a photo part: never its bytes."""

    sha256: str
    role: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Submission:
    """The parts of a submission document the queue acts on, with the document itself."""

    id: str
    kind: str
    subject_nik: str | None
    subject_kk: str | None
    filer_ref: str
    filer_kecamatan: str | None
    photos: tuple[DeclaredPhoto, ...]
    document: dict[str, object]


@dataclass(slots=True)
class QueuedSubmission:
    """A submission that got a ticket; `received_count` counts its Idempotency-Key."""

    submission: Submission
    photos: tuple[ReceivedPhoto, ...]
    status: TicketUpdate
    received_count: int = 1


@dataclass(slots=True)
class ParticipationQueue:
    """Every ticket of the sandbox, and the append-only feed of stage changes."""

    population: Population
    entries: list[QueuedSubmission] = field(default_factory=list)
    changes: list[TicketUpdate] = field(default_factory=list)
    _by_submission: dict[str, QueuedSubmission] = field(default_factory=dict)
    _by_ticket: dict[str, QueuedSubmission] = field(default_factory=dict)
    # (kind, subject NIK, filer ref) of tickets still open: at most one each.
    _open: dict[tuple[str, str, str], QueuedSubmission] = field(default_factory=dict)

    def replay(self, key: str) -> QueuedSubmission | None:
        """The entry already filed under `key`, counting this receipt; None if new."""
        entry = self._by_submission.get(key)
        if entry is not None:
            entry.received_count += 1
        return entry

    def refuse_open_duplicate(self, submission: Submission) -> None:
        subject = _open_key(submission)
        if subject is not None and subject in self._open:
            raise _refused(
                "duplicate_open_ticket", "The same filing about this person is still open."
            )

    def take(
        self, submission: Submission, photos: tuple[ReceivedPhoto, ...]
    ) -> tuple[QueuedSubmission, bool]:
        """File a fully read submission: (its entry, True when the key was known)."""
        # Another request with the same key may have finished while this one streamed.
        known = self.replay(submission.id)
        if known is not None:
            return known, True
        self.refuse_open_duplicate(submission)
        number = len(self.entries) + 1
        status = TicketUpdate(
            ticket=f"DTSEN-{REFERENCE_DATE.year}-{number:06d}",
            submission_id=submission.id,
            stage="received",
            reason_code=None,
            updated_at=_now(),
        )
        entry = QueuedSubmission(submission=submission, photos=photos, status=status)
        self.entries.append(entry)
        self._by_submission[submission.id] = entry
        self._by_ticket[status.ticket] = entry
        subject = _open_key(submission)
        if subject is not None:
            self._open[subject] = entry
        return entry, False

    def find_submission(self, submission_id: str) -> QueuedSubmission | None:
        return self._by_submission.get(submission_id)

    def move(self, ticket: str, stage: Stage, reason_code: str | None) -> TicketUpdate:
        """Move a ticket on and append the change to the feed."""
        entry = self._by_ticket.get(ticket)
        if entry is None:
            raise Refusal(404, "not_found", "No such ticket.")
        if (entry.status.stage, stage) not in _MOVES:
            raise Refusal(409, "invalid_move", f"A {entry.status.stage} ticket cannot go there.")
        entry.status = replace(
            entry.status, stage=stage, reason_code=reason_code, updated_at=_now()
        )
        self.changes.append(entry.status)
        subject = _open_key(entry.submission)
        if stage not in OPEN_STAGES and subject is not None:
            self._open.pop(subject, None)
        return entry.status


def _open_key(submission: Submission) -> tuple[str, str, str] | None:
    # Without a subject NIK two filings cannot be told to be about the same person.
    if submission.subject_nik is None:
        return None
    return (submission.kind, submission.subject_nik, submission.filer_ref)


def _now() -> datetime:
    return datetime.now(WIB).replace(microsecond=0)


QUEUE: Final = web.AppKey("participation_queue", ParticipationQueue)


def add_participation(app: web.Application, population: Population) -> None:
    """Give the sandbox app a participation queue and its routes."""
    app[QUEUE] = ParticipationQueue(population)
    app.router.add_post(SUBMISSIONS_PATH, _submit)
    app.router.add_get(SUBMISSIONS_PATH + "/{id}", _submission_status)
    app.router.add_get("/v1/participation/updates", _updates)
    app.router.add_get("/sandbox/queue", _queue)
    app.router.add_post("/sandbox/tickets/{ticket}/stage", _move_ticket)


# --- handlers -----------------------------------------------------------------------------


async def _submit(request: web.Request) -> web.Response:
    queue = request.app[QUEUE]
    key = _idempotency_key(request)
    # A known key answers with its ticket whatever the body: a retry is never refiled.
    known = queue.replay(key)
    if known is not None:
        return _receipt(known, replayed=True)
    reader = await _open_multipart(request)
    budget = _Budget()
    submission = _parse_submission(await _document_part(reader, budget), key)
    _refuse_unacceptable(submission, queue.population)
    # Checked before the photos are hashed, and again when filing (another may have won).
    queue.refuse_open_duplicate(submission)
    photos = await _photo_parts(reader, submission.photos, budget)
    entry, replayed = queue.take(submission, photos)
    return _receipt(entry, replayed=replayed)


async def _submission_status(request: web.Request) -> web.Response:
    entry = request.app[QUEUE].find_submission(request.match_info["id"])
    if entry is None:
        raise Refusal(404, "not_found", "No submission with this id.")
    return web.json_response(_encode_status(entry.status))


async def _updates(request: web.Request) -> web.Response:
    changes = request.app[QUEUE].changes
    position = _position(request.query.get("cursor"), len(changes))
    limit = _limit(request.query.get("limit"))
    items = changes[position : position + limit]
    return web.json_response(
        {
            "items": [_encode_status(change) for change in items],
            "next_cursor": _cursor(position + len(items)),
        }
    )


async def _queue(request: web.Request) -> web.Response:
    wanted = request.query.get("submission_id")
    entries = request.app[QUEUE].entries
    if wanted is not None:
        entries = [entry for entry in entries if entry.submission.id == wanted]
    return web.json_response({"items": [_encode_entry(entry) for entry in entries]})


async def _move_ticket(request: web.Request) -> web.Response:
    body = await json_object(request)
    if set(body) - {"stage", "reason_code"}:
        raise _invalid("Only stage and reason_code.")
    stage = body.get("stage")
    if not _is_stage(stage):
        raise _invalid(f"stage must be one of {', '.join(STAGES)}.")
    reason_code = _reason_code(stage, body.get("reason_code"))
    status = request.app[QUEUE].move(request.match_info["ticket"], stage, reason_code)
    return web.json_response(_encode_status(status))


def _reason_code(stage: Stage, value: object) -> str | None:
    if stage == "rejected":
        if not isinstance(value, str) or value not in TICKET_REASON_CODES:
            codes = ", ".join(TICKET_REASON_CODES)
            raise _invalid(f"A rejection needs a reason_code, one of {codes}.")
        return value
    if value is not None:
        raise _invalid("Only a rejection carries a reason_code.")
    return None


def _idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key", "")
    if not _KEY.fullmatch(key):
        raise _invalid("Idempotency-Key must be 1 to 64 letters, digits or hyphens.")
    return key


def _receipt(entry: QueuedSubmission, *, replayed: bool) -> web.Response:
    return web.json_response(
        {"ticket": entry.status.ticket, "status": "received"}, status=200 if replayed else 202
    )


def _is_stage(value: object) -> TypeGuard[Stage]:
    return isinstance(value, str) and value in STAGES


# --- reading the multipart body -----------------------------------------------------------


@dataclass(slots=True)
class _Budget:
    """Bytes the rest of the body may still hold."""

    left: int = MAX_BODY_BYTES

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise _too_large(f"A submission may hold at most {MAX_BODY_BYTES} bytes.")


@contextlib.contextmanager
def _malformed_body() -> Iterator[None]:
    try:
        yield
    except _MALFORMED:
        raise _invalid("The multipart body is malformed.") from None


async def _open_multipart(request: web.Request) -> MultipartReader:
    if request.content_type != "multipart/form-data":
        raise _invalid("The body must be multipart/form-data.")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _too_large(f"A submission may hold at most {MAX_BODY_BYTES} bytes.")
    with _malformed_body():
        return await request.multipart()


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    with _malformed_body():
        part = await reader.next()
    if part is not None and not isinstance(part, BodyPartReader):
        raise _invalid("Nested multipart parts are not allowed.")
    return part


async def _part_bytes(part: BodyPartReader, budget: _Budget) -> AsyncIterator[bytes]:
    """The bytes of one part as they arrive, charged to the body's budget."""
    while not part.at_eof():
        with _malformed_body():
            chunk = await part.read_chunk(_CHUNK)
        budget.spend(len(chunk))
        yield chunk


async def _document_part(reader: MultipartReader, budget: _Budget) -> bytes:
    part = await _next_part(reader)
    if part is None or part.name != "submission":
        raise _invalid("The first part must be the submission document.")
    if _content_type(part) != "application/json":
        raise _invalid("The submission part must be application/json.")
    data = bytearray()
    async for chunk in _part_bytes(part, budget):
        data += chunk
        if len(data) > _MAX_DOCUMENT_BYTES:
            raise _too_large(f"The submission document may hold at most {_MAX_DOCUMENT_BYTES} B.")
    return bytes(data)


async def _photo_parts(
    reader: MultipartReader, declared: tuple[DeclaredPhoto, ...], budget: _Budget
) -> tuple[ReceivedPhoto, ...]:
    """Read the photo parts in the declared order, keeping only their hashes and sizes."""
    received: list[ReceivedPhoto] = []
    while (part := await _next_part(reader)) is not None:
        if part.name != "photo":
            raise _invalid("After the submission document only photo parts may follow.")
        if len(received) == len(declared):
            raise _refused("photo_unreadable", "More photos were sent than declared.")
        received.append(await _photo(part, declared[len(received)], budget))
    if len(received) < len(declared):
        raise _refused("photo_missing", "Fewer photos were sent than declared.")
    return tuple(received)


async def _photo(part: BodyPartReader, declared: DeclaredPhoto, budget: _Budget) -> ReceivedPhoto:
    if _content_type(part) != "image/jpeg":
        raise _refused("photo_unreadable", "A photo part is not image/jpeg.")
    digest = hashlib.sha256()
    size = 0
    start = b""
    async for chunk in _part_bytes(part, budget):
        size += len(chunk)
        if size > MAX_PHOTO_BYTES:
            raise _too_large(f"A photo may hold at most {MAX_PHOTO_BYTES} bytes.")
        start += chunk[: len(_JPEG_START) - len(start)]
        digest.update(chunk)
    if start != _JPEG_START:
        raise _refused("photo_unreadable", "A photo is not a JPEG.")
    if digest.hexdigest() != declared.sha256:
        raise _refused("photo_unreadable", "A photo does not match its declared SHA-256.")
    return ReceivedPhoto(
        sha256=declared.sha256, role=declared.role, content_type="image/jpeg", size=size
    )


def _content_type(part: BodyPartReader) -> str:
    return part.headers.get(hdrs.CONTENT_TYPE, "").split(";")[0].strip().lower()


# --- the submission document --------------------------------------------------------------


def _parse_submission(raw: bytes, key: str) -> Submission:
    """The document's shape, checked; any flaw is a 400 (what it says is judged later)."""
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise _invalid("The submission part must be JSON.") from None
    doc = _object(document, "submission")
    if doc.get("id") != key:
        raise _invalid("submission.id must equal the Idempotency-Key.")
    kind = doc.get("kind")
    if not isinstance(kind, str) or kind not in SUBMISSION_KINDS:
        raise _invalid(f"submission.kind must be one of {', '.join(SUBMISSION_KINDS)}.")
    _timestamp(doc, "created_at")
    for key_name in ("language", "reason_code", "text"):
        _optional_string(doc, key_name, "submission", limit=None)
    subject = _object(doc.get("subject"), "submission.subject")
    _optional_string(subject, "name", "submission.subject")
    filer = _object(doc.get("filer"), "submission.filer")
    fields = _object({} if doc.get("fields") is None else doc.get("fields"), "submission.fields")
    return Submission(
        id=key,
        kind=kind,
        subject_nik=_optional_string(subject, "nik", "submission.subject"),
        subject_kk=_optional_string(subject, "kk", "submission.subject"),
        filer_ref=_filer_ref(filer),
        filer_kecamatan=_filer_kecamatan(fields),
        photos=_declared_photos(doc.get("photos")),
        document=doc,
    )


def _no_constant(name: str) -> object:
    # NaN and Infinity are not JSON; echoed back by /sandbox/queue they would break readers.
    raise ValueError(f"{name} is not JSON")


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be an object.")
    return value


def _optional_string(
    document: dict[str, object], key: str, where: str, *, limit: int | None = _MAX_TEXT
) -> str | None:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or (limit is not None and len(value) > limit):
        raise _invalid(f"{where}.{key} must be a string or null.")
    return value


def _timestamp(document: dict[str, object], key: str) -> datetime:
    value = document.get(key)
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() is None:
        raise _invalid(f"submission.{key} must be an ISO-8601 time with an offset.")
    return parsed


def _filer_ref(filer: dict[str, object]) -> str:
    if filer.get("channel") not in _FILER_CHANNELS:
        raise _invalid(f"submission.filer.channel must be one of {', '.join(_FILER_CHANNELS)}.")
    _optional_string(filer, "facilitator_id", "submission.filer")
    ref = _optional_string(filer, "ref", "submission.filer")
    if not ref:
        raise _invalid("submission.filer.ref must be a non-empty string.")
    return ref


def _filer_kecamatan(fields: dict[str, object]) -> str | None:
    code = fields.get("filer_kecamatan")
    if code is not None and (not isinstance(code, str) or not _KECAMATAN.fullmatch(code)):
        raise _invalid("submission.fields.filer_kecamatan must be a 6-digit code.")
    return code


def _declared_photos(value: object) -> tuple[DeclaredPhoto, ...]:
    if not isinstance(value, list) or len(value) > MAX_PHOTOS:
        raise _invalid(f"submission.photos must be a list of at most {MAX_PHOTOS}.")
    photos = []
    for index, item in enumerate(value):
        where = f"submission.photos[{index}]"
        photo = _object(item, where)
        sha256, role = photo.get("sha256"), photo.get("role")
        content_type = photo.get("content_type")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise _invalid(f"{where}.sha256 must be 64 hex digits.")
        if not isinstance(role, str) or not 0 < len(role) <= 64:
            raise _invalid(f"{where}.role must be a non-empty string.")
        if not isinstance(content_type, str):
            raise _invalid(f"{where}.content_type must be a string.")
        photos.append(DeclaredPhoto(sha256.lower(), role, content_type))
    return tuple(photos)


def _refuse_unacceptable(submission: Submission, population: Population) -> None:
    """The 422s that the document alone decides, in the order the filer should hear them."""
    if any(
        value is not None and not _SIXTEEN_DIGITS.fullmatch(value)
        for value in (submission.subject_nik, submission.subject_kk)
    ):
        raise _refused("invalid_nik", "NIK and KK must be 16 digits.")
    if submission.kind == "proposal" and submission.subject_nik is None:
        raise _refused("invalid_nik", "A proposal needs the NIK of the person proposed.")
    roles = {photo.role for photo in submission.photos}
    if submission.kind == "proposal" and not _PROPOSAL_ROLES.issubset(roles):
        raise _refused("photo_missing", "A proposal needs a photo of the house front and inside.")
    if any(photo.content_type != "image/jpeg" for photo in submission.photos):
        raise _refused("photo_unreadable", "Photos must be JPEG.")
    if _outside_area(submission, population):
        raise _refused("outside_area", "The person lives outside the filer's kecamatan.")


def _outside_area(submission: Submission, population: Population) -> bool:
    nik, filer_area = submission.subject_nik, submission.filer_kecamatan
    if submission.kind != "objection" or nik is None or filer_area is None:
        return False
    # Where the household is registered; a NIK the registry does not know is placed by
    # its first six digits, the kecamatan that issued it.
    found = population.find(nik)
    subject_area = found[1].kecamatan_code if found is not None else nik[:6]
    return subject_area != filer_area


# --- encoding -----------------------------------------------------------------------------


def _cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"u{position}".encode()).decode().rstrip("=")


def _position(cursor: str | None, end: int) -> int:
    """Where a cursor points in the feed; only cursors this sandbox issued are accepted."""
    if cursor is None:
        return 0
    malformed = _invalid("cursor is not one this registry gave out.")
    if not _CURSOR.fullmatch(cursor):
        raise malformed
    try:
        decoded = base64.b64decode(cursor + "=" * (-len(cursor) % 4), b"-_", validate=True)
    except binascii.Error:
        raise malformed from None
    match = _POSITION.fullmatch(decoded.decode("ascii", "replace"))
    if match is None or _cursor(int(match[1])) != cursor or int(match[1]) > end:
        raise malformed
    return int(match[1])


def _limit(value: str | None) -> int:
    if value is None:
        return _DEFAULT_UPDATES
    limit = int(value) if _LIMIT.fullmatch(value) else 0
    if not 1 <= limit <= _MAX_UPDATES:
        raise _invalid(f"limit must be 1 to {_MAX_UPDATES}.")
    return limit


def _encode_status(status: TicketUpdate) -> dict[str, object]:
    return {
        "ticket": status.ticket,
        "submission_id": status.submission_id,
        "stage": status.stage,
        "reason_code": status.reason_code,
        "updated_at": status.updated_at.isoformat(),
    }


def _encode_entry(entry: QueuedSubmission) -> dict[str, object]:
    return {
        "submission_id": entry.submission.id,
        "ticket": entry.status.ticket,
        "kind": entry.submission.kind,
        "stage": entry.status.stage,
        "reason_code": entry.status.reason_code,
        "received_count": entry.received_count,
        "submission": entry.submission.document,
        "photos": [
            {
                "sha256": photo.sha256,
                "role": photo.role,
                "content_type": photo.content_type,
                "size": photo.size,
            }
            for photo in entry.photos
        ],
    }
