"""RegistryClient's participation calls (submit, ticket updates, one ticket) against a
scripted registry over real HTTP on 127.0.0.1, which records what reached it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import BodyPartReader, web

from registry_client import (
    STAGES,
    PhotoPart,
    RegistryBadResponse,
    RegistryClient,
    RegistryError,
    RegistryRejected,
    RegistryUnavailable,
    SubmissionReceipt,
    TicketUpdate,
    UpdatesPage,
)

SUBMISSION_ID = "5b0c2f6e-8d1a-4c3b-9f7e-2a1d0c9b8a71"
NIK = "3302015708890003"
NAME = "Siti Aminah"
RECEIPT = {"ticket": "DTSEN-2026-000123", "status": "received"}
SUBMISSIONS = "/v1/participation/submissions"
UPDATES = "/v1/participation/updates"
WIB = timezone(timedelta(hours=7))


@dataclass(frozen=True)
class Part:
    name: str | None
    filename: str | None
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    parts: list[Part]


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def reply(document: object, status: int = 200, **headers: str) -> Reply:
    return Reply(status=status, body=json.dumps(document).encode(), headers=headers)


@dataclass
class ScriptedRegistry:
    """Answers each request with the next scripted reply (the last one repeats) and keeps
    what it received, multipart parts included."""

    url: str = ""
    script: list[Reply] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def answer(self, *replies: Reply) -> None:
        self.script.extend(replies)

    async def handle(self, request: web.Request) -> web.Response:
        parts = await _parts(request) if request.content_type == "multipart/form-data" else []
        self.received.append(
            Received(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                parts=parts,
            )
        )
        scripted = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if scripted.delay:
            await asyncio.sleep(scripted.delay)
        return web.Response(
            status=scripted.status,
            body=scripted.body,
            content_type=scripted.content_type,
            headers=scripted.headers,
        )


async def _parts(request: web.Request) -> list[Part]:
    reader = await request.multipart()
    parts = []
    while (part := await reader.next()) is not None:
        assert isinstance(part, BodyPartReader)
        parts.append(
            Part(part.name, part.filename, part.headers["Content-Type"], bytes(await part.read()))
        )
    return parts


@pytest.fixture
async def registry() -> AsyncIterator[ScriptedRegistry]:
    scripted = ScriptedRegistry()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", scripted.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    scripted.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield scripted
    await runner.cleanup()


def photo(role: str, content: bytes) -> PhotoPart:
    return PhotoPart(sha256=hashlib.sha256(content).hexdigest(), role=role, content=content)


# Bytes a careless multipart writer would mangle: CRLFs, a boundary-like line, non-UTF-8.
FRONT = photo("house_front", b"\xff\xd8\xff\xe0front\r\n--boundary\r\n\x00\xfe" * 100)
INSIDE = photo("house_inside", b"\xff\xd8\xff\xe0inside\r\n" + bytes(range(256)) * 40)


def submission_document(*photos: PhotoPart) -> dict[str, Any]:
    return {
        "id": SUBMISSION_ID,
        "kind": "objection",
        "created_at": "2026-10-20T09:15:00+07:00",
        "language": "id",
        "subject": {"nik": NIK, "name": NAME, "kk": "3302011203150007"},
        "filer": {"channel": "telegram", "ref": "c2f1…", "facilitator_id": None},
        "reason_code": "not_eligible_wealthy",
        "text": "Rumahnya bertingkat — punya dua mobil.",
        "fields": {"address": "Dusun Karangsalam RT 03/RW 05", "location": {"lat": -7.42}},
        "photos": [
            {"sha256": p.sha256, "role": p.role, "content_type": p.content_type} for p in photos
        ],
    }


async def submit(registry: ScriptedRegistry, **client_options: Any) -> SubmissionReceipt:
    async with RegistryClient(registry.url, "token", **client_options) as client:
        return await client.submit(
            SUBMISSION_ID, submission_document(FRONT, INSIDE), [FRONT, INSIDE]
        )


# --- submit -----------------------------------------------------------------------------------


async def test_a_submission_sends_its_json_first_then_the_photos_in_order(
    registry: ScriptedRegistry,
) -> None:
    registry.answer(reply(RECEIPT, 202))
    receipt = await submit(registry)
    assert receipt == SubmissionReceipt("DTSEN-2026-000123", "received", replayed=False)
    [request] = registry.received
    assert (request.method, request.path) == ("POST", SUBMISSIONS)
    submission, *photos = request.parts
    assert (submission.name, submission.content_type) == ("submission", "application/json")
    assert json.loads(submission.body) == submission_document(FRONT, INSIDE)
    assert "— punya".encode() in submission.body, "the JSON is UTF-8, not \\u escapes"
    assert [(p.name, p.filename, p.content_type, p.body) for p in photos] == [
        ("photo", f"{FRONT.sha256}.jpg", "image/jpeg", FRONT.content),
        ("photo", f"{INSIDE.sha256}.jpg", "image/jpeg", INSIDE.content),
    ]


async def test_a_submission_carries_its_id_as_idempotency_key_and_the_usual_headers(
    registry: ScriptedRegistry,
) -> None:
    registry.answer(reply(RECEIPT, 202))
    await submit(registry)
    headers = registry.received[0].headers
    assert headers["Idempotency-Key"] == SUBMISSION_ID
    assert headers["Authorization"] == "Bearer token"
    assert headers["Accept"] == "application/json"
    assert uuid.UUID(headers["X-Request-ID"]).version == 4
    assert headers["Content-Type"].startswith("multipart/form-data; boundary=")


async def test_the_same_key_again_is_a_replay_of_the_first_ticket(
    registry: ScriptedRegistry,
) -> None:
    registry.answer(reply(RECEIPT, 200))
    assert await submit(registry) == SubmissionReceipt(
        "DTSEN-2026-000123", "received", replayed=True
    )


@pytest.mark.parametrize("status", [400, 409, 413, 422])
async def test_a_refusal_for_good_carries_its_code_and_is_sent_once(
    registry: ScriptedRegistry, status: int
) -> None:
    registry.answer(reply({"error": {"code": "photo_missing", "message": "?"}}, status))
    with pytest.raises(RegistryRejected) as refused:
        await submit(registry)
    assert (refused.value.code, refused.value.http_status) == ("photo_missing", status)
    assert len(registry.received) == 1


async def test_a_refusal_without_a_valid_code_is_a_bad_response(
    registry: ScriptedRegistry,
) -> None:
    registry.answer(reply({"error": {"code": f"nik {NIK} unknown"}}, 422))
    with pytest.raises(RegistryBadResponse) as error:
        await submit(registry)
    assert NIK not in str(error.value)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_an_outage_is_not_retried_and_says_when_to_come_back(
    registry: ScriptedRegistry, status: int
) -> None:
    registry.answer(reply({"error": {"code": "unavailable"}}, status, **{"Retry-After": "7"}))
    with pytest.raises(RegistryUnavailable) as unavailable:
        await submit(registry, retries=5, backoff=0.0)
    assert unavailable.value.retry_after == 7
    assert len(registry.received) == 1, "the outbox schedules the next attempt, not the client"


async def test_a_retry_after_given_as_a_date_becomes_seconds(registry: ScriptedRegistry) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    registry.answer(Reply(status=503, headers={"Retry-After": when}))
    with pytest.raises(RegistryUnavailable) as unavailable:
        await submit(registry)
    assert unavailable.value.retry_after is not None
    assert 115 <= unavailable.value.retry_after <= 120


async def test_an_outage_without_retry_after_leaves_the_wait_to_the_caller(
    registry: ScriptedRegistry,
) -> None:
    registry.answer(Reply(status=502, body=b"<h1>Bad Gateway</h1>", content_type="text/html"))
    with pytest.raises(RegistryUnavailable) as unavailable:
        await submit(registry)
    assert unavailable.value.retry_after is None


async def test_a_slow_registry_times_out_after_one_attempt(registry: ScriptedRegistry) -> None:
    registry.answer(Reply(status=202, body=json.dumps(RECEIPT).encode(), delay=6))
    # A timeout long enough for a loaded machine to deliver the attempt to the registry.
    async with RegistryClient(registry.url, "token", retries=3) as client:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable):
            await client.submit(SUBMISSION_ID, submission_document(), [], timeout=1.0)
    assert 0.95 <= time.monotonic() - started < 3.0  # cut at its timeout, not retried
    assert len(registry.received) == 1


async def test_submit_times_out_after_the_clients_timeout_by_default(
    registry: ScriptedRegistry,
) -> None:
    registry.answer(Reply(status=202, body=json.dumps(RECEIPT).encode(), delay=6))
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable):
        await submit(registry, timeout=0.5)
    assert time.monotonic() - started < 3.0  # well before the registry's answer


async def test_a_refused_connection_is_unavailable() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with RegistryClient(f"http://127.0.0.1:{port}", "token") as client:
        with pytest.raises(RegistryUnavailable) as unavailable:
            await client.submit(SUBMISSION_ID, submission_document(), [])
    assert unavailable.value.retry_after is None


MALFORMED_RECEIPTS = {
    "no-ticket": reply({"status": "received"}, 202),
    "empty-ticket": reply({**RECEIPT, "ticket": ""}, 202),
    "ticket-with-space": reply({**RECEIPT, "ticket": "DTSEN 2026"}, 202),
    "ticket-65-chars": reply({**RECEIPT, "ticket": "T" * 65}, 202),
    "ticket-number": reply({**RECEIPT, "ticket": 123}, 202),
    "unknown-status": reply({**RECEIPT, "status": "queued"}, 202),
    "array": reply([RECEIPT], 202),
    "not-json": Reply(status=202, body=b"accepted", content_type="text/plain"),
    "malformed-json": Reply(status=202, body=b'{"ticket": "DTSEN'),
    "201": reply(RECEIPT, 201),
    "204": Reply(status=204),
    "redirect": Reply(status=303, headers={"Location": "/elsewhere"}),
}


@pytest.mark.parametrize("case", list(MALFORMED_RECEIPTS), ids=list(MALFORMED_RECEIPTS))
async def test_a_receipt_off_the_contract_is_a_bad_response(
    registry: ScriptedRegistry, case: str
) -> None:
    registry.answer(MALFORMED_RECEIPTS[case])
    with pytest.raises(RegistryBadResponse):
        await submit(registry)
    assert len(registry.received) == 1


async def test_an_oversize_receipt_is_refused(registry: ScriptedRegistry) -> None:
    registry.answer(reply({**RECEIPT, "padding": "x" * 5_000_000}, 202))
    with pytest.raises(RegistryBadResponse, match="submission: answer larger than 1048576 bytes"):
        await submit(registry)


@pytest.mark.parametrize("bad_id", ["", "a" * 65, "../admin", "id with space", "id\r\nX: y"])
async def test_a_malformed_submission_id_is_a_caller_error(bad_id: str) -> None:
    async with RegistryClient("http://127.0.0.1:9", "token") as client:
        with pytest.raises(ValueError, match="submission id"):
            await client.submit(bad_id, {}, [])
        with pytest.raises(ValueError, match="submission id"):
            await client.ticket(bad_id)


async def test_a_photo_whose_hash_is_not_a_sha256_is_a_caller_error() -> None:
    odd = PhotoPart(sha256="house.jpg", role="house_front", content=b"\xff\xd8")
    async with RegistryClient("http://127.0.0.1:9", "token") as client:
        with pytest.raises(ValueError, match="sha256"):
            await client.submit(SUBMISSION_ID, {}, [odd])


# --- ticket updates ---------------------------------------------------------------------------


def update_item(stage: str = "in_verification", **changes: object) -> dict[str, object]:
    item: dict[str, object] = {
        "ticket": "DTSEN-2026-000123",
        "submission_id": SUBMISSION_ID,
        "stage": stage,
        "reason_code": None,
        "updated_at": "2026-10-21T08:00:00+07:00",
    }
    return {**item, **changes}


async def updates(registry: ScriptedRegistry, cursor: str | None, **options: Any) -> UpdatesPage:
    async with RegistryClient(registry.url, "token", backoff=0.01) as client:
        return await client.ticket_updates(cursor, **options)


async def test_an_updates_page_parses_into_ticket_updates(registry: ScriptedRegistry) -> None:
    registry.answer(
        reply(
            {
                "items": [
                    update_item("received", updated_at="2026-10-20T02:15:00Z"),
                    update_item("rejected", reason_code="evidence_insufficient"),
                ],
                "next_cursor": "dTI",
            }
        )
    )
    page = await updates(registry, "dTA", limit=2)
    assert page == UpdatesPage(
        items=(
            TicketUpdate(
                "DTSEN-2026-000123",
                SUBMISSION_ID,
                "received",
                None,
                datetime(2026, 10, 20, 2, 15, tzinfo=UTC),
            ),
            TicketUpdate(
                "DTSEN-2026-000123",
                SUBMISSION_ID,
                "rejected",
                "evidence_insufficient",
                datetime(2026, 10, 21, 8, tzinfo=WIB),
            ),
        ),
        next_cursor="dTI",
    )
    assert page.items[1].updated_at.utcoffset() == timedelta(hours=7)
    [request] = registry.received
    assert (request.method, request.path) == ("GET", UPDATES)
    assert request.query == {"limit": "2", "cursor": "dTA"}


async def test_updates_from_the_start_send_no_cursor(registry: ScriptedRegistry) -> None:
    registry.answer(reply({"items": [], "next_cursor": None}))
    assert await updates(registry, None) == UpdatesPage(items=(), next_cursor=None)
    assert registry.received[0].query == {"limit": "500"}


async def test_every_stage_of_the_contract_is_understood(registry: ScriptedRegistry) -> None:
    registry.answer(reply({"items": [update_item(stage) for stage in STAGES], "next_cursor": "c"}))
    page = await updates(registry, None)
    assert tuple(item.stage for item in page.items) == STAGES


async def test_reading_updates_is_retried_after_an_outage(registry: ScriptedRegistry) -> None:
    registry.answer(
        Reply(status=503),
        reply({"items": [update_item()], "next_cursor": "c"}),
    )
    page = await updates(registry, "b")
    assert len(page.items) == 1
    assert len(registry.received) == 2


def page(*items: object, next_cursor: object = "c") -> dict[str, object]:
    return {"items": list(items), "next_cursor": next_cursor}


MALFORMED_PAGES = {
    "unknown-stage": page(update_item("escalated")),
    "stage-case": page(update_item("Accepted")),
    "reason-shape": page(update_item("rejected", reason_code="Bad Luck!")),
    "empty-submission-id": page(update_item(submission_id="")),
    "long-submission-id": page(update_item(submission_id="s" * 65)),
    "naive-time": page(update_item(updated_at="2026-10-21T08:00:00")),
    "epoch-time": page(update_item(updated_at=1792547200)),
    "no-ticket": page({k: v for k, v in update_item().items() if k != "ticket"}),
    "no-reason-code-key": page({k: v for k, v in update_item().items() if k != "reason_code"}),
    "items-object": {"items": {"0": update_item()}, "next_cursor": "c"},
    "no-next-cursor": {"items": []},
    "long-cursor": page(next_cursor="c" * 513),
    "cursor-number": page(next_cursor=42),
}


@pytest.mark.parametrize("case", list(MALFORMED_PAGES), ids=list(MALFORMED_PAGES))
async def test_an_updates_page_off_the_contract_is_a_bad_response(
    registry: ScriptedRegistry, case: str
) -> None:
    registry.answer(reply(MALFORMED_PAGES[case]))
    with pytest.raises(RegistryBadResponse, match=r"^ticket updates: answer off the contract"):
        await updates(registry, None)
    assert len(registry.received) == 1, "a broken answer is not retried"


async def test_the_longest_cursor_and_submission_id_the_contract_allows_are_taken(
    registry: ScriptedRegistry,
) -> None:
    registry.answer(
        reply({"items": [update_item(submission_id="s" * 64)], "next_cursor": "c" * 512})
    )
    page = await updates(registry, None)
    assert page.next_cursor == "c" * 512
    assert page.items[0].submission_id == "s" * 64


async def test_an_oversize_updates_page_is_refused(registry: ScriptedRegistry) -> None:
    registry.answer(reply({"items": [update_item() for _ in range(1000)], "next_cursor": "c"}))
    async with RegistryClient(registry.url, "token", max_answer_bytes=100_000) as client:
        with pytest.raises(RegistryBadResponse, match="answer larger than 100000 bytes"):
            await client.ticket_updates(None, limit=1000)
    assert len(registry.received) == 1, "an oversize answer is not retried"


# --- one ticket -------------------------------------------------------------------------------


async def test_one_ticket_gives_its_current_stage(registry: ScriptedRegistry) -> None:
    registry.answer(reply(update_item("accepted")))
    async with RegistryClient(registry.url, "token") as client:
        update = await client.ticket(SUBMISSION_ID)
    assert update == TicketUpdate(
        "DTSEN-2026-000123", SUBMISSION_ID, "accepted", None, datetime(2026, 10, 21, 8, tzinfo=WIB)
    )
    [request] = registry.received
    assert (request.method, request.path) == ("GET", f"{SUBMISSIONS}/{SUBMISSION_ID}")


async def test_an_unknown_submission_has_no_ticket(registry: ScriptedRegistry) -> None:
    registry.answer(reply({"error": {"code": "not_found", "message": "?"}}, 404))
    async with RegistryClient(registry.url, "token") as client:
        assert await client.ticket(SUBMISSION_ID) is None
    assert len(registry.received) == 1


async def test_a_404_without_an_error_document_is_no_answer_about_the_ticket(
    registry: ScriptedRegistry,
) -> None:
    """A proxy's HTML 404 says nothing about the submission, so it is not taken for 'none'."""
    registry.answer(Reply(status=404, body=b"<h1>Not Found</h1>", content_type="text/html"))
    async with RegistryClient(registry.url, "token") as client:
        with pytest.raises(RegistryBadResponse):
            await client.ticket(SUBMISSION_ID)


async def test_another_refusal_of_a_ticket_look_up_is_raised(registry: ScriptedRegistry) -> None:
    registry.answer(reply({"error": {"code": "unauthorized", "message": "?"}}, 401))
    async with RegistryClient(registry.url, "token") as client:
        with pytest.raises(RegistryRejected) as refused:
            await client.ticket(SUBMISSION_ID)
    assert refused.value.http_status == 401


async def test_a_ticket_about_another_submission_is_a_bad_response(
    registry: ScriptedRegistry,
) -> None:
    registry.answer(reply(update_item(submission_id="another-one")))
    async with RegistryClient(registry.url, "token") as client:
        with pytest.raises(RegistryBadResponse, match="another submission"):
            await client.ticket(SUBMISSION_ID)


async def test_a_ticket_in_an_unknown_stage_is_a_bad_response(registry: ScriptedRegistry) -> None:
    registry.answer(reply(update_item("archived")))
    async with RegistryClient(registry.url, "token") as client:
        with pytest.raises(RegistryBadResponse, match=r"answer\.stage \(literal_error\)"):
            await client.ticket(SUBMISSION_ID)


# --- personal data never leaks ----------------------------------------------------------------


async def test_a_validation_error_names_the_field_and_never_the_value(
    registry: ScriptedRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """A registry that puts a NIK or a name where a code belongs must not get them logged."""
    caplog.set_level(logging.DEBUG)
    registry.answer(
        reply(
            {
                "items": [
                    update_item(),
                    update_item(stage=NIK, reason_code=NAME, ticket=f"DTSEN {NIK}"),
                ],
                "next_cursor": "c",
            }
        ),
        reply({"ticket": NIK + " " + NAME, "status": NAME}, 202),
    )
    errors: list[RegistryError] = []
    async with RegistryClient(registry.url, "token") as client:
        for call in (
            client.ticket_updates(None),
            client.submit(SUBMISSION_ID, submission_document(), []),
        ):
            with pytest.raises(RegistryBadResponse) as error:
                await call
            errors.append(error.value)

    updates_error, receipt_error = (str(raised) for raised in errors)
    assert updates_error == (
        "ticket updates: answer off the contract at answer.items[1].ticket "
        "(string_pattern_mismatch); answer.items[1].stage (literal_error); "
        "answer.items[1].reason_code (string_pattern_mismatch)"
    )
    assert receipt_error.startswith("submission: answer off the contract at answer.ticket")
    for raised in errors:
        assert raised.__cause__ is None and raised.__context__ is None
    texts = [caplog.text, *(str(e) for e in errors), *(repr(e) for e in errors)]
    assert "request_id=" in caplog.text
    for text in texts:
        for secret in (NIK, NAME, "Siti", "Aminah"):
            assert secret not in text
