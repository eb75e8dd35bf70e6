"""The sandbox's participation queue over real HTTP: submissions, tickets, the updates feed,
and the faults a filing must survive exactly once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from registry_client.sandbox import RunningSandbox, start_sandbox

TOKEN = "participation-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox(households=300, seed=11, token=TOKEN)
    yield running
    await running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# --- building filings ---------------------------------------------------------------------


def jpeg(seed: int, size: int = 4096) -> bytes:
    return b"\xff\xd8\xff\xe0" + random.Random(seed).randbytes(size)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@dataclass
class Filing:
    """A submission document and the photo parts sent after it."""

    document: dict[str, Any]
    photos: list[bytes] = field(default_factory=list)

    @property
    def key(self) -> str:
        return str(self.document["id"])


def filing(
    nik: str | None,
    *,
    kind: str = "objection",
    ref: str = "chat-hash-1",
    photos: list[tuple[str, bytes]] | None = None,
    fields: dict[str, Any] | None = None,
) -> Filing:
    if photos is None:
        photos = [("house_front", jpeg(1)), ("house_inside", jpeg(2))] if kind == "proposal" else []
    document = {
        "id": str(uuid.uuid4()),
        "kind": kind,
        "created_at": "2026-10-18T09:30:00+07:00",
        "language": "id",
        "subject": {"nik": nik, "name": "Siti Aminah", "kk": None},
        "filer": {"channel": "telegram", "ref": ref, "facilitator_id": None},
        "reason_code": None,
        "text": "Rumah ini sudah mampu.",
        "fields": fields or {},
        "photos": [
            {"sha256": sha256(content), "role": role, "content_type": "image/jpeg"}
            for role, content in photos
        ],
    }
    return Filing(document, [content for _, content in photos])


def someone(sandbox: RunningSandbox, index: int = 0) -> str:
    return sandbox.population.sample(index + 1)[index].nik


def multipart(
    document: object, photos: list[bytes], *, photo_type: str = "image/jpeg"
) -> aiohttp.MultipartWriter:
    writer = aiohttp.MultipartWriter("form-data")
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    part = writer.append(raw, {"Content-Type": "application/json"})
    part.set_content_disposition("form-data", name="submission")
    for content in photos:
        part = writer.append(content, {"Content-Type": photo_type})
        part.set_content_disposition("form-data", name="photo", filename="photo.jpg")
    return writer


async def post(
    http: aiohttp.ClientSession,
    sandbox: RunningSandbox,
    body: Any,
    headers: dict[str, str],
) -> tuple[int, dict[str, Any]]:
    async with http.post(
        f"{sandbox.url}/v1/participation/submissions", data=body, headers=headers
    ) as response:
        return response.status, await response.json()


async def submit(
    http: aiohttp.ClientSession,
    sandbox: RunningSandbox,
    filed: Filing,
    *,
    key: str | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {**AUTH, "Idempotency-Key": key or filed.key}
    return await post(http, sandbox, multipart(filed.document, filed.photos), headers)


async def call(
    http: aiohttp.ClientSession,
    sandbox: RunningSandbox,
    method: str,
    path: str,
    body: Any = None,
) -> tuple[int, dict[str, Any]]:
    async with http.request(method, f"{sandbox.url}{path}", json=body, headers=AUTH) as response:
        return response.status, await response.json()


async def queue(
    http: aiohttp.ClientSession, sandbox: RunningSandbox, query: str = ""
) -> list[dict[str, Any]]:
    status, body = await call(http, sandbox, "GET", f"/sandbox/queue{query}")
    assert status == 200
    items: list[dict[str, Any]] = body["items"]
    return items


async def move(
    http: aiohttp.ClientSession,
    sandbox: RunningSandbox,
    ticket: str,
    stage: str,
    reason_code: str | None = None,
) -> tuple[int, dict[str, Any]]:
    body = {"stage": stage, "reason_code": reason_code}
    return await call(http, sandbox, "POST", f"/sandbox/tickets/{ticket}/stage", body)


async def set_faults(
    http: aiohttp.ClientSession, sandbox: RunningSandbox, **faults: object
) -> None:
    status, _ = await call(http, sandbox, "POST", "/sandbox/faults", faults)
    assert status == 200


# --- idempotency --------------------------------------------------------------------------


async def test_the_same_key_gets_the_same_ticket_and_is_counted(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    filed = filing(someone(sandbox), kind="proposal")
    first = await submit(http, sandbox, filed)
    again = await submit(http, sandbox, filed)
    assert first == (202, {"ticket": "DTSEN-2026-000001", "status": "received"})
    assert again == (200, {"ticket": "DTSEN-2026-000001", "status": "received"})
    [item] = await queue(http, sandbox)
    assert item["received_count"] == 2
    assert item["submission_id"] == filed.key
    assert item["kind"] == "proposal" and item["stage"] == "received"
    assert item["reason_code"] is None
    assert item["submission"] == filed.document


async def test_a_known_key_answers_with_its_ticket_whatever_the_body(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    filed = filing(someone(sandbox))
    _, receipt = await submit(http, sandbox, filed)
    headers = {**AUTH, "Idempotency-Key": filed.key, "Content-Type": "text/plain"}
    assert await post(http, sandbox, b"anything", headers) == (200, receipt)
    other = filing(someone(sandbox, 1))
    assert await submit(http, sandbox, other, key=filed.key) == (200, receipt)
    [item] = await queue(http, sandbox)
    assert item["received_count"] == 3


async def test_tickets_are_numbered_in_the_order_received(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    tickets = [
        (await submit(http, sandbox, filing(someone(sandbox, index))))[1]["ticket"]
        for index in range(3)
    ]
    assert tickets == ["DTSEN-2026-000001", "DTSEN-2026-000002", "DTSEN-2026-000003"]
    assert [item["ticket"] for item in await queue(http, sandbox)] == tickets


async def test_concurrent_sends_of_one_key_file_one_ticket(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    filed = filing(someone(sandbox), kind="proposal")
    answers = await asyncio.gather(*(submit(http, sandbox, filed) for _ in range(4)))
    assert sorted(status for status, _ in answers) == [200, 200, 200, 202]
    assert {body["ticket"] for _, body in answers} == {"DTSEN-2026-000001"}
    [item] = await queue(http, sandbox)
    assert item["received_count"] == 4


async def test_the_queue_keeps_photo_hashes_not_photos(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    front, inside, extra = jpeg(10, 50_000), jpeg(11, 70_000), jpeg(12, 100)
    photos = [("house_front", front), ("house_inside", inside), ("kitchen", extra)]
    filed = filing(someone(sandbox), kind="proposal", photos=photos)
    assert (await submit(http, sandbox, filed))[0] == 202
    [item] = await queue(http, sandbox, f"?submission_id={filed.key}")
    assert item["photos"] == [
        {
            "sha256": sha256(content),
            "role": role,
            "content_type": "image/jpeg",
            "size": len(content),
        }
        for role, content in photos
    ]
    assert await queue(http, sandbox, f"?submission_id={uuid.uuid4()}") == []


# --- refusals -----------------------------------------------------------------------------


def short_nik(filed: Filing) -> None:
    filed.document["subject"]["nik"] = filed.document["subject"]["nik"][:15]


def bad_kk(filed: Filing) -> None:
    filed.document["subject"]["kk"] = "33020157"


def proposal_without_nik(filed: Filing) -> None:
    filed.document["kind"] = "proposal"
    filed.document["subject"]["nik"] = None


def one_photo_part_short(filed: Filing) -> None:
    filed.photos.pop()


def proposal_without_inside_photo(filed: Filing) -> None:
    filed.document["photos"].pop()
    filed.photos.pop()


def wrong_hash(filed: Filing) -> None:
    filed.photos[0] = jpeg(99)


def not_a_jpeg(filed: Filing) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(200)
    filed.photos[0] = png
    filed.document["photos"][0]["sha256"] = sha256(png)


def one_photo_part_too_many(filed: Filing) -> None:
    filed.photos.append(jpeg(3))


def declared_png(filed: Filing) -> None:
    filed.document["photos"][0]["content_type"] = "image/png"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (short_nik, "invalid_nik"),
        (bad_kk, "invalid_nik"),
        (proposal_without_nik, "invalid_nik"),
        (one_photo_part_short, "photo_missing"),
        (proposal_without_inside_photo, "photo_missing"),
        (wrong_hash, "photo_unreadable"),
        (not_a_jpeg, "photo_unreadable"),
        (one_photo_part_too_many, "photo_unreadable"),
        (declared_png, "photo_unreadable"),
    ],
)
async def test_a_flawed_submission_is_refused_for_good(
    sandbox: RunningSandbox,
    http: aiohttp.ClientSession,
    change: Callable[[Filing], None],
    code: str,
) -> None:
    filed = filing(someone(sandbox), kind="proposal")
    change(filed)
    status, body = await submit(http, sandbox, filed)
    assert (status, body["error"]["code"]) == (422, code)
    assert body["error"]["message"]
    assert await queue(http, sandbox) == []


async def test_an_objection_outside_the_filers_kecamatan_is_refused(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    nik = someone(sandbox)
    elsewhere = "110101" if not nik.startswith("110101") else "110102"
    status, body = await submit(http, sandbox, filing(nik, fields={"filer_kecamatan": elsewhere}))
    assert (status, body["error"]["code"]) == (422, "outside_area")
    status, _ = await submit(http, sandbox, filing(nik, fields={"filer_kecamatan": nik[:6]}))
    assert status == 202


async def test_a_second_open_filing_about_the_same_person_is_refused(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    nik = someone(sandbox)
    _, first = await submit(http, sandbox, filing(nik))
    status, body = await submit(http, sandbox, filing(nik))
    assert (status, body["error"]["code"]) == (422, "duplicate_open_ticket")
    # Another filer, or another kind, is a filing of its own.
    assert (await submit(http, sandbox, filing(nik, ref="chat-hash-2")))[0] == 202
    assert (await submit(http, sandbox, filing(nik, kind="correction")))[0] == 202
    # Once the first ticket is closed, the same filer may object again.
    assert (await move(http, sandbox, first["ticket"], "withdrawn"))[0] == 200
    assert (await submit(http, sandbox, filing(nik)))[0] == 202


async def test_requests_without_a_usable_key_or_body_are_invalid(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    filed = filing(someone(sandbox))
    key = {**AUTH, "Idempotency-Key": filed.key}
    cases: list[tuple[Any, dict[str, str]]] = [
        (multipart(filed.document, []), AUTH),
        (multipart(filed.document, []), {**AUTH, "Idempotency-Key": "not a key!"}),
        (multipart(filed.document, []), {**AUTH, "Idempotency-Key": "k" * 65}),
        (multipart(b'{"id": "broken', []), key),
        (multipart(b"[" * 50_000, []), key),
        (multipart({**filed.document, "text": float("nan")}, []), key),
        (multipart([filed.document], []), key),
        (multipart({**filed.document, "id": str(uuid.uuid4())}, []), key),
        (multipart({**filed.document, "kind": "complaint"}, []), key),
        (multipart({**filed.document, "created_at": "yesterday"}, []), key),
        (multipart({**filed.document, "photos": None}, []), key),
        (multipart({**filed.document, "fields": {"filer_kecamatan": "33"}}, []), key),
        (b"--x\r\n\r\n", {**key, "Content-Type": "multipart/form-data"}),
        (b"--x\r\nbroken", {**key, "Content-Type": "multipart/form-data; boundary=x"}),
        (json.dumps(filed.document).encode(), {**key, "Content-Type": "application/json"}),
    ]
    for body, headers in cases:
        status, answer = await post(http, sandbox, body, headers)
        assert (status, answer["error"]["code"]) == (400, "invalid_request"), answer
    assert await queue(http, sandbox) == []


async def test_a_photo_part_before_the_document_is_invalid(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    filed = filing(someone(sandbox))
    writer = aiohttp.MultipartWriter("form-data")
    writer.append(jpeg(1), {"Content-Type": "image/jpeg"}).set_content_disposition(
        "form-data", name="photo"
    )
    status, answer = await post(http, sandbox, writer, {**AUTH, "Idempotency-Key": filed.key})
    assert (status, answer["error"]["code"]) == (400, "invalid_request")


async def test_oversize_photos_and_bodies_are_too_large(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    big = jpeg(5, 12 * 1024 * 1024)
    filed = filing(someone(sandbox), photos=[("house_front", big)])
    status, body = await submit(http, sandbox, filed)
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    parts = [("house_front", jpeg(index, 10 * 1024 * 1024)) for index in range(5)]
    status, body = await submit(http, sandbox, filing(someone(sandbox), photos=parts))
    assert (status, body["error"]["code"]) == (413, "payload_too_large")
    assert await queue(http, sandbox) == []
    # The connection is still good for the next filing.
    assert (await submit(http, sandbox, filing(someone(sandbox))))[0] == 202


async def test_the_participation_calls_need_the_token(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    filed = filing(someone(sandbox))
    headers = {"Idempotency-Key": filed.key}
    status, body = await post(http, sandbox, multipart(filed.document, []), headers)
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    for path in ("/v1/participation/updates", f"/v1/participation/submissions/{filed.key}"):
        async with http.get(f"{sandbox.url}{path}") as response:
            assert response.status == 401
    assert await queue(http, sandbox) == []


# --- stages and the updates feed ----------------------------------------------------------


async def test_stage_changes_reach_the_feed_in_order_with_stable_cursors(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    status, empty = await call(http, sandbox, "GET", "/v1/participation/updates")
    assert status == 200 and empty["items"] == [] and isinstance(empty["next_cursor"], str)
    filed = [filing(someone(sandbox, index)) for index in range(3)]
    tickets = [(await submit(http, sandbox, f))[1]["ticket"] for f in filed]
    moves = [
        (tickets[0], "in_verification", None),
        (tickets[1], "withdrawn", None),
        (tickets[0], "rejected", "evidence_insufficient"),
        (tickets[2], "in_verification", None),
        (tickets[2], "accepted", None),
    ]
    for ticket, stage, reason in moves:
        status, answer = await move(http, sandbox, ticket, stage, reason)
        assert status == 200 and (answer["stage"], answer["reason_code"]) == (stage, reason)

    cursor, pages = empty["next_cursor"], []
    for _ in range(4):
        status, page = await call(
            http, sandbox, "GET", f"/v1/participation/updates?cursor={cursor}&limit=2"
        )
        assert status == 200
        pages.append((cursor, page))
        cursor = page["next_cursor"]
    assert [len(page["items"]) for _, page in pages] == [2, 2, 1, 0]
    assert pages[-1][1]["next_cursor"] == pages[-1][0], "nothing new keeps the cursor"
    items = [item for _, page in pages for item in page["items"]]
    assert [(i["ticket"], i["stage"], i["reason_code"]) for i in items] == moves
    submission_ids = {t: f.key for t, f in zip(tickets, filed, strict=True)}
    assert all(item["submission_id"] == submission_ids[item["ticket"]] for item in items)
    # Re-reading from any cursor gives the same items.
    for cursor, page in pages:
        assert (await call(
            http, sandbox, "GET", f"/v1/participation/updates?cursor={cursor}&limit=2"
        ))[1] == page  # fmt: skip
    _, whole = await call(http, sandbox, "GET", "/v1/participation/updates")
    assert whole["items"] == items


async def test_a_ticket_tells_its_current_stage(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    filed = filing(someone(sandbox))
    _, receipt = await submit(http, sandbox, filed)
    path = f"/v1/participation/submissions/{filed.key}"
    status, answer = await call(http, sandbox, "GET", path)
    assert status == 200
    assert answer["ticket"] == receipt["ticket"] and answer["submission_id"] == filed.key
    assert (answer["stage"], answer["reason_code"]) == ("received", None)
    assert answer["updated_at"].endswith("+07:00")
    await move(http, sandbox, receipt["ticket"], "in_verification")
    await move(http, sandbox, receipt["ticket"], "rejected", "outside_criteria")
    _, answer = await call(http, sandbox, "GET", path)
    assert (answer["stage"], answer["reason_code"]) == ("rejected", "outside_criteria")
    status, answer = await call(
        http, sandbox, "GET", f"/v1/participation/submissions/{uuid.uuid4()}"
    )
    assert (status, answer["error"]["code"]) == (404, "not_found")


async def test_the_initial_stage_is_not_an_update(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    await submit(http, sandbox, filing(someone(sandbox)))
    _, page = await call(http, sandbox, "GET", "/v1/participation/updates")
    assert page["items"] == []


async def test_tickets_move_only_along_the_stages(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    _, receipt = await submit(http, sandbox, filing(someone(sandbox)))
    ticket = receipt["ticket"]
    assert (await move(http, sandbox, ticket, "accepted"))[0] == 409
    assert (await move(http, sandbox, ticket, "received"))[0] == 409
    assert (await move(http, sandbox, ticket, "in_verification"))[0] == 200
    assert (await move(http, sandbox, ticket, "withdrawn"))[0] == 409
    assert (await move(http, sandbox, ticket, "accepted"))[0] == 200
    status, body = await move(http, sandbox, ticket, "rejected", "duplicate")
    assert (status, body["error"]["code"]) == (409, "invalid_move")
    assert (await move(http, sandbox, "DTSEN-2026-999999", "in_verification"))[0] == 404


@pytest.mark.parametrize(
    "body",
    [
        {"stage": "done"},
        {"stage": "rejected"},
        {"stage": "rejected", "reason_code": "not_a_reason"},
        {"stage": "in_verification", "reason_code": "duplicate"},
        {"stage": "in_verification", "note": "x"},
        ["in_verification"],
        b"[" * 50_000,
        b"not json",
    ],
)
async def test_a_malformed_stage_move_is_invalid(
    sandbox: RunningSandbox, http: aiohttp.ClientSession, body: Any
) -> None:
    _, receipt = await submit(http, sandbox, filing(someone(sandbox)))
    url = f"{sandbox.url}/sandbox/tickets/{receipt['ticket']}/stage"
    sent = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with http.post(url, **sent) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    "query",
    ["cursor=nonsense!", "cursor=dTk5", "cursor=eDA", "cursor=", "limit=0", "limit=1001",
     "limit=ten", "limit=-1"],
)  # fmt: skip
async def test_malformed_feed_queries_are_invalid(
    sandbox: RunningSandbox, http: aiohttp.ClientSession, query: str
) -> None:
    status, body = await call(http, sandbox, "GET", f"/v1/participation/updates?{query}")
    assert (status, body["error"]["code"]) == (400, "invalid_request")


# --- faults -------------------------------------------------------------------------------


async def test_a_filing_whose_answer_timed_out_is_kept_and_its_retry_gets_the_ticket(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    filed = filing(someone(sandbox), kind="proposal")
    await set_faults(http, sandbox, latency_ms=3000)
    # The client gives up (and hangs up) long before the registry answers, but late
    # enough for a loaded machine to have delivered the whole request.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):
            await submit(http, sandbox, filed)
    [item] = await queue(http, sandbox)
    assert (item["submission_id"], item["received_count"]) == (filed.key, 1)
    status, receipt = await submit(http, sandbox, filed)
    assert (status, receipt["ticket"]) == (200, item["ticket"])
    [item] = await queue(http, sandbox)
    assert item["received_count"] == 2


async def test_a_registry_that_is_down_files_nothing(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    filed = filing(someone(sandbox), kind="proposal")
    await set_faults(http, sandbox, down=True)
    status, body = await submit(http, sandbox, filed)
    assert (status, body["error"]["code"]) == (503, "unavailable")
    assert await queue(http, sandbox) == []
    await set_faults(http, sandbox)
    assert (await submit(http, sandbox, filed))[0] == 202


async def test_refused_uploads_do_not_hold_up_the_sandboxs_shutdown() -> None:
    sandbox = await start_sandbox(households=50, seed=11, token=TOKEN)
    try:
        photos = [("house_front", jpeg(1, 3_000_000)), ("house_inside", jpeg(2, 3_000_000))]
        nik = someone(sandbox)
        async with aiohttp.ClientSession() as http:
            filed = filing(nik, kind="proposal", photos=photos)
            assert (await submit(http, sandbox, filed))[0] == 202
            assert (await submit(http, sandbox, filed))[0] == 200
            duplicate = filing(nik, kind="proposal", photos=photos)
            assert (await submit(http, sandbox, duplicate))[0] == 422
            headers = {"Idempotency-Key": duplicate.key}
            body = multipart(duplicate.document, duplicate.photos)
            assert (await post(http, sandbox, body, headers))[0] == 401
    finally:
        started = time.monotonic()
        await sandbox.stop()
    assert time.monotonic() - started < 2
