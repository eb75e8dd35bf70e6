"""RegistryClient against the sandbox registry and a scripted fake, both over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gzip
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from registry_client import (
    Household,
    ProgrammeStatus,
    RegistryBadResponse,
    RegistryClient,
    RegistryError,
    RegistryRejected,
    RegistryUnavailable,
    StatusReport,
)
from registry_client.sandbox import RunningSandbox, mask_name, start_sandbox
from registry_client.sandbox.population import Person

# The example answer of REGISTRY_API.md, section 1.
CONTRACT_ANSWER: dict[str, Any] = {
    "found": True,
    "quarter": "2026Q4",
    "name_masked": "SI** AM****",
    "household": {"decile": 3, "kecamatan_code": "330201", "members": 4},
    "programmes": [
        {"code": "PKH", "status": "active", "since": "2025Q1", "amount_idr": 750000,
         "period": "2026Q4"},
        {"code": "PBI-JK", "status": "active", "since": "2024Q3"},
        {"code": "BPNT", "status": "ended", "until": "2026Q3",
         "reason_code": "decile_above_cutoff"},
    ],
    "updated_at": "2026-10-18T00:00:00+07:00",
}  # fmt: skip
NIK = "3302015708890003"
NAME = "Siti Aminah"


# --- the sandbox --------------------------------------------------------------------------


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox(households=300, seed=11)
    yield running
    await running.stop()


class Attempts:
    """Counts the HTTP requests a session makes and keeps their headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_start.append(self._started)

    async def _started(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
    ) -> None:
        self.headers.append(dict(params.headers))

    @property
    def count(self) -> int:
        return len(self.headers)


@pytest.fixture
async def attempts() -> AsyncIterator[tuple[Attempts, aiohttp.ClientSession]]:
    counter = Attempts()
    async with aiohttp.ClientSession(trace_configs=[counter.trace]) as session:
        yield counter, session


async def set_faults(sandbox: RunningSandbox, **faults: object) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{sandbox.url}/sandbox/faults",
            json=faults,
            headers={"Authorization": f"Bearer {sandbox.token}"},
        ) as response,
    ):
        assert response.status == 200, await response.text()


def someone(sandbox: RunningSandbox, programme: str | None = "PKH") -> Person:
    """A registered person with at least two words in their name."""
    return next(p for p in sandbox.population.sample(100, programme) if " " in p.name)


async def test_a_matching_nik_and_name_give_the_household_status(
    sandbox: RunningSandbox,
) -> None:
    person = someone(sandbox)
    found = sandbox.population.find(person.nik)
    assert found is not None
    _, household = found
    async with RegistryClient(sandbox.url, sandbox.token) as client:
        report = await client.look_up_status(person.nik, person.name, "telegram")
    assert report == StatusReport(
        quarter="2026Q4",
        name_masked=mask_name(person.name),
        household=Household(
            decile=household.decile,
            kecamatan_code=household.kecamatan_code,
            members=len(household.members),
        ),
        programmes=household.programmes,
        updated_at=household.updated_at,
    )
    assert report.updated_at.utcoffset() == timedelta(hours=7)
    assert any(p.code == "PKH" and p.status == "active" for p in report.programmes)


async def test_unknown_nik_and_wrong_name_are_answered_alike(sandbox: RunningSandbox) -> None:
    person = someone(sandbox)
    unknown_nik = person.nik[:12] + "9999"
    assert sandbox.population.find(unknown_nik) is None
    async with RegistryClient(sandbox.url, sandbox.token) as client:
        assert await client.look_up_status(unknown_nik, person.name, "ussd") is None
        assert await client.look_up_status(person.nik, "Nama Yang Salah", "ussd") is None

    async def raw(nik: str, name: str) -> tuple[int, str, bytes]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{sandbox.url}/v1/status/lookup",
                json={"nik": nik, "name": name, "channel": "ussd"},
                headers={"Authorization": f"Bearer {sandbox.token}"},
            ) as response,
        ):
            return response.status, response.content_type, await response.read()

    unknown = await raw(unknown_nik, person.name)
    wrong_name = await raw(person.nik, "Nama Yang Salah")
    assert unknown == wrong_name
    assert json.loads(unknown[2]) == {"found": False}


@pytest.mark.parametrize(
    "spell",
    [
        str.upper,
        str.lower,
        lambda name: "  " + name.replace(" ", "   ") + " ",
        lambda name: name + ".",
        lambda name: name.replace(" ", "-"),
    ],
    ids=["upper", "lower", "spacing", "trailing-dot", "hyphen"],
)
async def test_the_name_matches_whatever_its_case_spacing_and_punctuation(
    sandbox: RunningSandbox, spell: Callable[[str], str]
) -> None:
    person = someone(sandbox)
    async with RegistryClient(sandbox.url, sandbox.token) as client:
        assert await client.look_up_status(person.nik, spell(person.name), "web") is not None


async def test_part_of_the_name_is_not_enough(sandbox: RunningSandbox) -> None:
    person = someone(sandbox)
    async with RegistryClient(sandbox.url, sandbox.token) as client:
        assert await client.look_up_status(person.nik, person.name.split()[0], "web") is None


async def test_a_wrong_token_is_refused_without_retrying(
    sandbox: RunningSandbox, attempts: tuple[Attempts, aiohttp.ClientSession]
) -> None:
    counter, session = attempts
    client = RegistryClient(sandbox.url, "wrong-token", session=session)
    with pytest.raises(RegistryRejected) as refused:
        await client.look_up_status(someone(sandbox).nik, "x", "telegram")
    assert (refused.value.code, refused.value.http_status) == ("unauthorized", 401)
    assert counter.count == 1


async def test_a_malformed_nik_is_refused(sandbox: RunningSandbox) -> None:
    async with RegistryClient(sandbox.url, sandbox.token) as client:
        with pytest.raises(RegistryRejected) as refused:
            await client.look_up_status("12345", NAME, "telegram")
    assert (refused.value.code, refused.value.http_status) == ("invalid_nik", 422)


async def test_every_attempt_carries_the_token_and_a_fresh_request_id(
    sandbox: RunningSandbox, attempts: tuple[Attempts, aiohttp.ClientSession]
) -> None:
    counter, session = attempts
    await set_faults(sandbox, down=True)
    client = RegistryClient(sandbox.url, sandbox.token, session=session, retries=2, backoff=0.01)
    with pytest.raises(RegistryUnavailable):
        await client.look_up_status(someone(sandbox).nik, NAME, "telegram")
    assert counter.count == 3
    assert all(h["Authorization"] == f"Bearer {sandbox.token}" for h in counter.headers)
    request_ids = [h["X-Request-ID"] for h in counter.headers]
    assert len(set(request_ids)) == 3
    assert all(uuid.UUID(request_id).version == 4 for request_id in request_ids)


@pytest.mark.parametrize("retries", [0, 1, 3])
async def test_an_outage_gives_up_after_the_allowed_retries(
    sandbox: RunningSandbox, attempts: tuple[Attempts, aiohttp.ClientSession], retries: int
) -> None:
    counter, session = attempts
    await set_faults(sandbox, down=True)
    client = RegistryClient(
        sandbox.url, sandbox.token, session=session, retries=retries, backoff=0.01
    )
    with pytest.raises(RegistryUnavailable):
        await client.look_up_status(someone(sandbox).nik, NAME, "telegram")
    assert counter.count == retries + 1


async def test_retries_ride_out_intermittent_errors(
    sandbox: RunningSandbox, attempts: tuple[Attempts, aiohttp.ClientSession]
) -> None:
    counter, session = attempts
    await set_faults(sandbox, error_rate=0.3)
    client = RegistryClient(sandbox.url, sandbox.token, session=session, retries=10, backoff=0.0)
    people = sandbox.population.sample(20)
    for person in people:
        assert await client.look_up_status(person.nik, person.name, "telegram") is not None
    assert counter.count > len(people), "some attempts failed and were retried"


async def test_resetting_the_faults_brings_the_registry_back(sandbox: RunningSandbox) -> None:
    person = someone(sandbox)
    await set_faults(sandbox, down=True)
    async with RegistryClient(sandbox.url, sandbox.token, retries=0) as client:
        with pytest.raises(RegistryUnavailable):
            await client.look_up_status(person.nik, person.name, "telegram")
        await set_faults(sandbox)
        assert await client.look_up_status(person.nik, person.name, "telegram") is not None


async def test_a_slow_registry_fails_within_the_callers_deadline(sandbox: RunningSandbox) -> None:
    person = someone(sandbox)
    await set_faults(sandbox, latency_ms=4000)
    async with RegistryClient(sandbox.url, sandbox.token) as client:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable):
            await client.look_up_status(person.nik, person.name, "ussd", deadline=0.5)
        elapsed = time.monotonic() - started
    assert 0.45 <= elapsed <= 2.0  # the deadline, with room for a loaded machine


async def test_an_expired_deadline_fails_at_once(sandbox: RunningSandbox) -> None:
    async with RegistryClient(sandbox.url, sandbox.token) as client:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable):
            await client.look_up_status(NIK, NAME, "ussd", deadline=0)
    assert time.monotonic() - started < 0.1


async def test_sample_people_gives_registered_pairs(sandbox: RunningSandbox) -> None:
    async with RegistryClient(sandbox.url, sandbox.token) as client:
        pairs = await client.sample_people(5, programme="BPNT")
    assert len(pairs) == 5
    for nik, name in pairs:
        found = sandbox.population.find(nik)
        assert found is not None and found[0].name == name
        programme = found[1].programme("BPNT")
        assert programme is not None and programme.status == "active"


async def test_the_sandbox_answers_errors_as_contract_json(sandbox: RunningSandbox) -> None:
    auth = {"Authorization": f"Bearer {sandbox.token}", "X-Request-ID": "req-123"}
    cases = [
        ("GET", "/nowhere", None, 404, "not_found"),
        ("GET", "/v1/status/lookup", None, 405, "method_not_allowed"),
        ("POST", "/v1/status/lookup", {"nik": NIK}, 400, "invalid_request"),
        ("GET", "/sandbox/people?limit=0", None, 400, "invalid_request"),
        ("GET", "/sandbox/people?programme=XYZ", None, 400, "invalid_request"),
        ("POST", "/sandbox/faults", {"error_rate": 2}, 400, "invalid_request"),
        ("POST", "/sandbox/faults", {"down": "yes"}, 400, "invalid_request"),
    ]
    async with aiohttp.ClientSession() as session:
        for method, path, body, status, code in cases:
            async with session.request(
                method, f"{sandbox.url}{path}", json=body, headers=auth
            ) as response:
                assert response.status == status, path
                assert (await response.json())["error"]["code"] == code
                assert response.headers["X-Request-ID"] == "req-123"
        async with session.post(f"{sandbox.url}/v1/status/lookup", data=b"not json") as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert (await response.json())["error"]["code"] == "unauthorized"
        # The sandbox's own tools need no token: tests and shells flip faults freely.
        async with session.get(f"{sandbox.url}/sandbox/people?limit=2") as response:
            assert response.status == 200
            assert len((await response.json())["items"]) == 2


async def test_a_client_owns_only_the_session_it_created(sandbox: RunningSandbox) -> None:
    async with aiohttp.ClientSession() as shared:
        client = RegistryClient(sandbox.url, sandbox.token, session=shared)
        await client.close()
        assert not shared.closed
    owning = RegistryClient(sandbox.url, sandbox.token)
    await owning.sample_people(1)
    await owning.close()
    await owning.close()  # closing twice is harmless


# --- a scripted fake registry, for answers the sandbox never gives ------------------------


@dataclass
class Scripted:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class FakeRegistry:
    """Answers each request with the next scripted answer; the last one repeats."""

    url: str = ""
    script: list[Scripted] = field(default_factory=list)
    received: list[float] = field(default_factory=list)

    def answer(self, *answers: Scripted) -> None:
        self.script.extend(answers)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(time.monotonic())
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if answer.delay:
            await asyncio.sleep(answer.delay)
        return web.Response(
            status=answer.status,
            body=answer.body,
            content_type=answer.content_type,
            headers=answer.headers,
        )


@pytest.fixture
async def fake() -> AsyncIterator[FakeRegistry]:
    registry = FakeRegistry()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", registry.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    registry.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield registry
    await runner.cleanup()


def answer_json(document: object, status: int = 200, **headers: str) -> Scripted:
    return Scripted(status=status, body=json.dumps(document).encode(), headers=headers)


def changed(path: str, value: object) -> dict[str, Any]:
    """The contract answer with the value at a dotted path replaced, or removed for `...`."""
    document = copy.deepcopy(CONTRACT_ANSWER)
    *parents, last = path.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    key: Any = int(last) if isinstance(target, list) else last
    if value is ...:
        del target[key]
    else:
        target[key] = value
    return document


async def test_the_contract_example_parses_into_dataclasses(fake: FakeRegistry) -> None:
    fake.answer(answer_json(CONTRACT_ANSWER))
    async with RegistryClient(fake.url, "t") as client:
        report = await client.look_up_status(NIK, NAME, "telegram")
    assert report == StatusReport(
        quarter="2026Q4",
        name_masked="SI** AM****",
        household=Household(decile=3, kecamatan_code="330201", members=4),
        programmes=(
            ProgrammeStatus("PKH", "active", since="2025Q1", amount_idr=750000, period="2026Q4"),
            ProgrammeStatus("PBI-JK", "active", since="2024Q3"),
            ProgrammeStatus("BPNT", "ended", until="2026Q3", reason_code="decile_above_cutoff"),
        ),
        updated_at=datetime(2026, 10, 18, tzinfo=timezone(timedelta(hours=7))),
    )


BROKEN_ANSWERS = {
    "malformed-json": Scripted(body=b'{"found": tru'),
    "html": Scripted(body=b"<html><body>Gateway</body></html>", content_type="text/html"),
    "json-as-text": Scripted(body=json.dumps(CONTRACT_ANSWER).encode(), content_type="text/plain"),
    "array": answer_json([1, 2]),
    "no-found": answer_json({}),
    "found-as-string": answer_json({"found": "yes"}),
    "no-quarter": answer_json(changed("quarter", ...)),
    "quarter-format": answer_json(changed("quarter", "2026-4")),
    "no-name-masked": answer_json(changed("name_masked", ...)),
    "household-list": answer_json(changed("household", [3, "330201", 4])),
    "decile-11": answer_json(changed("household.decile", 11)),
    "decile-string": answer_json(changed("household.decile", "3")),
    "decile-bool": answer_json(changed("household.decile", True)),
    "kecamatan-int": answer_json(changed("household.kecamatan_code", 330201)),
    "members-0": answer_json(changed("household.members", 0)),
    "programmes-object": answer_json(changed("programmes", {"PKH": "active"})),
    "programme-code": answer_json(changed("programmes.0.code", "pkh; drop")),
    "programme-state": answer_json(changed("programmes.0.status", "paused")),
    "active-without-since": answer_json(changed("programmes.1.since", ...)),
    "ended-without-reason": answer_json(changed("programmes.2.reason_code", ...)),
    "ended-without-until": answer_json(changed("programmes.2.until", ...)),
    "reason-shape": answer_json(changed("programmes.2.reason_code", "Bad Luck!")),
    "amount-string": answer_json(changed("programmes.0.amount_idr", "750000")),
    "naive-time": answer_json(changed("updated_at", "2026-10-18T00:00:00")),
    "no-time": answer_json(changed("updated_at", "yesterday")),
    "204": Scripted(status=204),
    "404-html": Scripted(status=404, body=b"<h1>Not Found</h1>", content_type="text/html"),
    "400-without-code": answer_json({"error": {"message": "no"}}, status=400),
    "400-odd-code": answer_json({"error": {"code": f"nik {NIK} unknown"}}, status=400),
    "redirect": Scripted(status=302, headers={"Location": "/elsewhere"}),
}


@pytest.mark.parametrize("broken", list(BROKEN_ANSWERS), ids=list(BROKEN_ANSWERS))
async def test_answers_off_the_contract_are_bad_responses(fake: FakeRegistry, broken: str) -> None:
    fake.answer(BROKEN_ANSWERS[broken])
    async with RegistryClient(fake.url, "t") as client:
        with pytest.raises(RegistryBadResponse) as error:
            await client.look_up_status(NIK, NAME, "telegram")
    assert len(fake.received) == 1, "a broken answer is not retried"
    assert NIK not in str(error.value)


async def test_a_refusal_carries_the_registry_error_code(fake: FakeRegistry) -> None:
    fake.answer(answer_json({"error": {"code": "invalid_nik", "message": "?"}}, status=422))
    async with RegistryClient(fake.url, "t") as client:
        with pytest.raises(RegistryRejected) as refused:
            await client.look_up_status(NIK, NAME, "telegram")
    assert (refused.value.code, refused.value.http_status) == ("invalid_nik", 422)


async def test_server_errors_are_retried_whatever_their_body(fake: FakeRegistry) -> None:
    fake.answer(
        Scripted(status=502, body=b"<html>Bad Gateway</html>", content_type="text/html"),
        answer_json({"error": {"code": "unavailable", "message": "down"}}, status=503),
        answer_json({"found": False}),
    )
    async with RegistryClient(fake.url, "t", backoff=0.01) as client:
        assert await client.look_up_status(NIK, NAME, "telegram") is None
    assert len(fake.received) == 3


async def test_too_many_requests_waits_as_long_as_retry_after_says(fake: FakeRegistry) -> None:
    fake.answer(
        answer_json({"error": {"code": "rate_limited", "message": "slow down"}}, 429,
                    **{"Retry-After": "1"}),
        answer_json(CONTRACT_ANSWER),
    )  # fmt: skip
    async with RegistryClient(fake.url, "t", backoff=0.01) as client:
        report = await client.look_up_status(NIK, NAME, "telegram", deadline=3)
    assert report is not None
    first, second = fake.received
    assert second - first >= 0.95


async def test_a_retry_after_beyond_the_deadline_fails_at_once(fake: FakeRegistry) -> None:
    fake.answer(answer_json({"error": {"code": "rate_limited", "message": "later"}}, 429,
                            **{"Retry-After": "30"}))  # fmt: skip
    async with RegistryClient(fake.url, "t", backoff=0.01) as client:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable) as unavailable:
            await client.look_up_status(NIK, NAME, "ussd", deadline=2)
    assert time.monotonic() - started < 0.5
    assert unavailable.value.retry_after == 30
    assert len(fake.received) == 1


async def test_a_hanging_registry_times_out_on_every_attempt(fake: FakeRegistry) -> None:
    fake.answer(Scripted(body=b'{"found": false}', delay=5))
    # Timeouts long enough for a loaded machine to deliver each attempt to the fake.
    async with RegistryClient(fake.url, "t", timeout=0.6, retries=1, backoff=0.01) as client:
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable):
            await client.look_up_status(NIK, NAME, "telegram")
    assert 1.2 <= time.monotonic() - started < 3.0  # two attempts, each cut at its timeout
    assert len(fake.received) == 2


async def test_a_refused_connection_is_unavailable() -> None:
    # Bind a port, then free it: nothing listens there any more.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with RegistryClient(f"http://127.0.0.1:{port}", "t", backoff=0.01) as client:
        with pytest.raises(RegistryUnavailable):
            await client.look_up_status(NIK, NAME, "telegram")


# --- personal data never leaks --------------------------------------------------------------


async def test_nik_and_name_never_reach_logs_or_exceptions(
    sandbox: RunningSandbox, fake: FakeRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    person = someone(sandbox)
    errors: list[RegistryError] = []

    async def look_up(client: RegistryClient, nik: str, name: str, **kwargs: Any) -> None:
        try:
            await client.look_up_status(nik, name, "telegram", **kwargs)
        except RegistryError as error:
            errors.append(error)

    async with RegistryClient(sandbox.url, sandbox.token, backoff=0.01) as client:
        await look_up(client, person.nik, person.name)
        await look_up(client, person.nik, "Nama Yang Salah")
        await look_up(client, person.nik[:15], person.name)
        await set_faults(sandbox, down=True)
        await look_up(client, person.nik, person.name)
        await set_faults(sandbox, latency_ms=1000)
        await look_up(client, person.nik, person.name, deadline=0.2)
    async with RegistryClient(sandbox.url, "wrong", backoff=0.01) as client:
        await look_up(client, person.nik, person.name)
    fake.answer(BROKEN_ANSWERS["400-odd-code"])
    async with RegistryClient(fake.url, "t") as client:
        await look_up(client, NIK, person.name)

    assert len(errors) == 5
    assert "request_id=" in caplog.text and "attempt" in caplog.text
    texts = [caplog.text, *(repr(e) for e in errors), *(str(e.__cause__) for e in errors)]
    secrets = [
        person.nik,
        person.nik[:15],
        NIK,
        person.name,
        person.name.upper(),
        person.name.replace(" ", ""),
        person.name.lower().replace(" ", ""),
    ]
    for text in texts:
        for secret in secrets:
            assert secret not in text


async def test_codes_added_by_the_registry_later_do_not_break_look_ups(
    fake: FakeRegistry,
) -> None:
    """A new programme or reason is worded generically instead of failing every check."""
    document = changed("programmes.0.code", "PKH-PLUS")
    document["programmes"][2]["reason_code"] = "new_policy_2027"
    fake.answer(answer_json(document))
    async with RegistryClient(fake.url, "t") as client:
        report = await client.look_up_status(NIK, NAME, "telegram")
    assert report is not None
    assert report.programmes[0].code == "PKH-PLUS"
    assert report.programmes[2].reason_code == "new_policy_2027"


# --- answers have a size cap ----------------------------------------------------------------


async def test_an_answer_of_exactly_the_cap_is_read_and_one_byte_more_is_refused(
    fake: FakeRegistry,
) -> None:
    body = json.dumps(CONTRACT_ANSWER).encode()
    fake.answer(Scripted(body=body))
    async with RegistryClient(fake.url, "t", max_answer_bytes=len(body)) as client:
        assert await client.look_up_status(NIK, NAME, "telegram") is not None
    async with RegistryClient(fake.url, "t", max_answer_bytes=len(body) - 1) as client:
        with pytest.raises(RegistryBadResponse) as error:
            await client.look_up_status(NIK, NAME, "telegram")
    assert str(error.value) == f"status lookup: answer larger than {len(body) - 1} bytes"


async def test_an_answer_announced_larger_than_the_cap_is_refused_unread(
    fake: FakeRegistry,
) -> None:
    fake.answer(Scripted(body=b" " * 5_000_000 + json.dumps(CONTRACT_ANSWER).encode()))
    async with RegistryClient(fake.url, "t") as client:
        with pytest.raises(RegistryBadResponse, match="answer larger than 1048576 bytes"):
            await client.look_up_status(NIK, NAME, "telegram")
    assert len(fake.received) == 1, "an oversize answer is not retried"


async def test_a_compressed_answer_is_capped_by_its_unpacked_size(fake: FakeRegistry) -> None:
    unpacked = b" " * 5_000_000 + json.dumps(CONTRACT_ANSWER).encode()
    fake.answer(Scripted(body=gzip.compress(unpacked), headers={"Content-Encoding": "gzip"}))
    async with RegistryClient(fake.url, "t") as client:
        with pytest.raises(RegistryBadResponse, match="answer larger than 1048576 bytes"):
            await client.look_up_status(NIK, NAME, "telegram")


@dataclass
class Firehose:
    """Streams a JSON answer without Content-Length, far longer than any cap, slowly
    enough that reading all of it would take seconds."""

    url: str = ""
    chunks: int = 1000
    sent_all: bool = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await response.write(b'{"found": false, "padding": "')
            for _ in range(self.chunks):
                await response.write(b"x" * 64 * 1024)
                await asyncio.sleep(0.002)
            await response.write(b'"}')
            self.sent_all = True
        return response


@pytest.fixture
async def firehose() -> AsyncIterator[Firehose]:
    server = Firehose()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield server
    await runner.cleanup()


async def test_a_streamed_answer_is_refused_once_it_passes_the_cap(firehose: Firehose) -> None:
    async with RegistryClient(firehose.url, "t", timeout=30) as client:
        started = time.monotonic()
        with pytest.raises(RegistryBadResponse, match="answer larger than 1048576 bytes"):
            await client.look_up_status(NIK, NAME, "telegram")
        elapsed = time.monotonic() - started
    assert not firehose.sent_all, "the client stopped reading instead of buffering it all"
    assert elapsed < 1.0


def test_the_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_answer_bytes"):
        RegistryClient("http://127.0.0.1:9", "t", max_answer_bytes=0)


# --- validation errors name the field, never the value ------------------------------------------


async def test_a_status_answer_off_the_contract_names_the_field_and_kind_only(
    fake: FakeRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    document = changed("household.kecamatan_code", NIK)
    document["programmes"][0]["code"] = NAME
    fake.answer(answer_json(document))
    async with RegistryClient(fake.url, "t") as client:
        with pytest.raises(RegistryBadResponse) as error:
            await client.look_up_status("3302010101010001", "Budi", "telegram")
    assert str(error.value) == (
        "status lookup: answer off the contract at answer.household.kecamatan_code "
        "(string_pattern_mismatch); answer.programmes[0].code (string_pattern_mismatch)"
    )
    assert error.value.__cause__ is None and error.value.__context__ is None
    for text in (str(error.value), repr(error.value), caplog.text):
        assert NIK not in text and NAME not in text


async def test_many_errors_are_counted_rather_than_all_listed(fake: FakeRegistry) -> None:
    fake.answer(answer_json({"found": True}))
    async with RegistryClient(fake.url, "t") as client:
        with pytest.raises(RegistryBadResponse) as error:
            await client.look_up_status(NIK, NAME, "telegram")
    assert str(error.value) == (
        "status lookup: answer off the contract at answer.quarter (missing); "
        "answer.name_masked (missing); answer.household (missing); 2 more"
    )


async def test_malformed_json_keeps_no_trace_of_the_document(fake: FakeRegistry) -> None:
    fake.answer(Scripted(body=f'{{"found": true, "nik": "{NIK}"'.encode()))
    async with RegistryClient(fake.url, "t") as client:
        with pytest.raises(RegistryBadResponse) as error:
            await client.look_up_status(NIK, NAME, "telegram")
    assert str(error.value) == "status lookup: answer is malformed JSON"
    assert error.value.__cause__ is None and error.value.__context__ is None
