"""The sandbox's quarterly change feed (docs/registry-api.md §4, §5): published quarters,
the households whose decile and programmes changed in each, and the sandbox-only tool that
publishes the next quarter.

Who changes is a pure function of the population's seed, the quarter and the state the
previous quarter left: a seeded share of households moves decile by one to three steps and
gains or loses programmes by the real cut-offs, and the population's current state (what
the status look-up answers) becomes the new quarter's. A benchmark may ask for more changes
than the population has people: the feed then goes on past the real changes with synthetic
items, each a pure function of (seed, quarter, position), computed when a page is read.
Nothing is kept per synthetic item: a quarter of a million changes costs a few megabytes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import json
import math
import random
import re
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Final

from aiohttp import web

from registry_client.models import PROGRAMME_CODES, ProgrammeStatus
from registry_client.sandbox.participation import Refusal, json_object
from registry_client.sandbox.population import (
    REFERENCE_DATE,
    WIB,
    HouseholdRecord,
    Population,
    _pip_amount,
    _pkh_component,
    generate_population,
)

QUARTERS_PATH: Final = "/v1/quarters"
ADVANCE_PATH: Final = "/sandbox/quarters/advance"
# The share of households whose decile moves in a quarter, unless the advance says otherwise.
CHANGE_SHARE: Final = 0.08
MAX_CHANGES: Final = 10_000_000
_MAX_PAGE: Final = 1000

# The highest decile each programme serves (population.py draws by the same cut-offs).
_CUTOFFS: Final = {"PKH": 4, "BPNT": 5, "PBI-JK": 5, "BLT": 3, "PIP": 4}
# How many of the households that come under a cut-off join the programme that quarter,
# as many as population.py gives it among those under the cut-off. BLT is missing on
# purpose: it is a one-off top-up paid in rounds, never joined by a re-ranking.
_JOIN_SHARES: Final = {"PKH": 0.65, "BPNT": 0.75, "PBI-JK": 0.85, "PIP": 0.60}
# How far a decile moves: one step mostly, three seldom.
_STEPS: Final = ((1, 0.6), (2, 0.9), (3, 1.0))
# The share of households joining a programme because their own objection was upheld; the
# others join by the quarterly re-ranking, for which the contract has no reason code (null).
_OBJECTION_SHARE: Final = 0.25

_QUARTER: Final = re.compile(r"([0-9]{4})Q([1-4])")
_LIMIT: Final = re.compile(r"[0-9]{1,4}")
_CURSOR: Final = re.compile(r"[A-Za-z0-9_-]{4,40}")
_POSITION: Final = re.compile(r"q([0-9]{4}Q[1-4]):([1-9][0-9]{0,9})")

# Synthetic items: NIKs born in the sandbox's age range (0 to 80 on REFERENCE_DATE), with
# serials above any real one, so they never collide with a person of the population.
_FIRST_BIRTH: Final = REFERENCE_DATE.replace(year=REFERENCE_DATE.year - 81).toordinal() + 1
_LAST_BIRTH: Final = REFERENCE_DATE.toordinal()
_MAX_SERIAL: Final = 9999
# Used only when the population has no household to take kecamatan codes from (Gambir,
# Jakarta Pusat).
_FALLBACK_KECAMATAN: Final = "317101"
# Synthetic items take their states from this many seeded transitions of a small shadow
# population, drawn by the same rules as the real ones.
_SHADOW_HOUSEHOLDS: Final = 512
_TEMPLATES: Final = 2048


# --- quarters -----------------------------------------------------------------------------


def next_quarter(quarter: str) -> str:
    year, number = _quarter_parts(quarter)
    return f"{year + 1}Q1" if number == 4 else f"{year}Q{number + 1}"


def published_at(quarter: str) -> datetime:
    """When the sandbox publishes `quarter`: on the reference date's day of the quarter's
    first month, so the population's own quarter is published on its reference date."""
    year, number = _quarter_parts(quarter)
    return datetime(year, 3 * number - 2, REFERENCE_DATE.day, tzinfo=WIB)


def _quarter_parts(quarter: str) -> tuple[int, int]:
    match = _QUARTER.fullmatch(quarter)
    if match is None:
        raise ValueError("a quarter is written like 2026Q4")
    return int(match[1]), int(match[2])


# --- one household's change ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Transition:
    """A household before and after a quarter's change, and the reason given for it."""

    record: HouseholdRecord
    previous: tuple[int, tuple[str, ...]]
    current: tuple[int, tuple[str, ...]]
    reason_code: str | None


def _transition(
    rng: random.Random, household: HouseholdRecord, quarter: str, previous_quarter: str
) -> _Transition:
    """The household with its decile moved and its programmes following the cut-offs."""
    before = household.decile
    after = _moved_decile(rng, before)
    published = published_at(quarter)
    ages = [person.age_on(published.date()) for person in household.members]
    by_code = {programme.code: programme for programme in household.programmes}
    programmes: list[ProgrammeStatus] = []
    for code in (*PROGRAMME_CODES, *(c for c in by_code if c not in PROGRAMME_CODES)):
        status = _next_status(rng, by_code.get(code), code, before, after, ages, quarter)
        if status is not None:
            programmes.append(status)
    record = dataclasses.replace(
        household, decile=after, programmes=tuple(programmes), updated_at=published
    )
    was, now = _active_codes(household.programmes), _active_codes(record.programmes)
    reason: str | None = None
    if set(was) - set(now):
        reason = "decile_above_cutoff"  # only a higher decile takes a programme away here
    elif set(now) - set(was) and rng.random() < _OBJECTION_SHARE:
        reason = "objection_upheld"  # the household's own objection to its ranking
    return _Transition(record, (before, was), (after, now), reason)


def _moved_decile(rng: random.Random, decile: int) -> int:
    draw = rng.random()
    step = next(size for size, share in _STEPS if draw < share)
    up = rng.random() < 0.5
    moved = decile + step if up else decile - step
    # Three steps at most, so the other way is always within 1 to 10.
    return moved if 1 <= moved <= 10 else (decile - step if up else decile + step)


def _next_status(
    rng: random.Random,
    status: ProgrammeStatus | None,
    code: str,
    before: int,
    after: int,
    ages: list[int],
    quarter: str,
) -> ProgrammeStatus | None:
    cutoff = _CUTOFFS.get(code)
    if cutoff is None:
        return _refreshed(status, quarter)
    if status is not None and status.status == "active":
        if after > cutoff:
            # Paid up to and including the quarter before; the contract's own example.
            until = _previous_quarter(quarter)
            return ProgrammeStatus(code, "ended", until=until, reason_code="decile_above_cutoff")
        return _refreshed(status, quarter)
    join_share = _JOIN_SHARES.get(code)
    if join_share is not None and after <= cutoff < before and rng.random() < join_share:
        joined = _joined(code, ages, quarter)
        if joined is not None:
            return joined
    return status


def _joined(code: str, ages: list[int], quarter: str) -> ProgrammeStatus | None:
    """An active programme from `quarter`, or None when no member qualifies for it."""
    if code == "PKH":
        components = sorted((c for c in map(_pkh_component, ages) if c is not None), reverse=True)
        if not components:
            return None
        amount = sum(components[:4])
        return ProgrammeStatus(code, "active", since=quarter, amount_idr=amount, period=quarter)
    if code == "PIP":
        pupils = [amount for amount in map(_pip_amount, ages) if amount is not None]
        if not pupils:
            return None
        amount = sum(pupils)
        return ProgrammeStatus(code, "active", since=quarter, amount_idr=amount, period=quarter)
    return ProgrammeStatus(code, "active", since=quarter)


def _refreshed(status: ProgrammeStatus | None, quarter: str) -> ProgrammeStatus | None:
    """A paying programme that goes on pays for the new quarter."""
    if status is None or status.status != "active" or status.period in (None, quarter):
        return status
    return dataclasses.replace(status, period=quarter)


def _active_codes(programmes: Sequence[ProgrammeStatus]) -> tuple[str, ...]:
    return tuple(p.code for p in programmes if p.status == "active")


def _previous_quarter(quarter: str) -> str:
    year, number = _quarter_parts(quarter)
    return f"{year - 1}Q4" if number == 1 else f"{year}Q{number - 1}"


# --- a published quarter's feed -----------------------------------------------------------


def _fragment(transition: _Transition) -> str:
    """An item's JSON after its NIK, one string shared by every item with the same change."""
    return _encode_change(transition.previous, transition.current, transition.reason_code)


@cache
def _encode_change(
    previous: tuple[int, tuple[str, ...]], current: tuple[int, tuple[str, ...]], reason: str | None
) -> str:
    # A few hundred distinct changes at most: ten deciles, a handful of programme sets.
    def state(decile: int, codes: tuple[str, ...]) -> str:
        return json.dumps({"decile": decile, "programmes": list(codes)}, separators=(",", ":"))

    return (
        f',"previous":{state(*previous)},"current":{state(*current)},'
        f'"reason_code":{json.dumps(reason)}}}'
    )


_BIRTH_DAYS: Final = _LAST_BIRTH - _FIRST_BIRTH + 1
# A prime above any template count, for the affine hash that picks an item's template.
_TEMPLATE_PRIME: Final = 1_000_003


@cache
def _birth_codes() -> tuple[str, ...]:
    """DDMMYY of every birth day in range, a man's then a woman's (day + 40) for each day:
    60 000 short strings, made once, so a synthetic NIK is a few look-ups."""
    codes: list[str] = []
    for ordinal in range(_FIRST_BIRTH, _LAST_BIRTH + 1):
        born = date.fromordinal(ordinal)
        tail = f"{born.month:02d}{born.year % 100:02d}"
        codes += (f"{born.day:02d}{tail}", f"{born.day + 40:02d}{tail}")
    return tuple(codes)


@cache
def _serial_codes() -> tuple[str, ...]:
    return tuple(f"{serial:04d}" for serial in range(_MAX_SERIAL + 1))


@dataclass(frozen=True, slots=True)
class _Synthetic:
    """Items past the real changes: item j is a pure function of (seed, quarter, j).

    NIK j is element (multiplier·j + offset) mod `space` of kecamatan × birth day × sex ×
    serial, an affine bijection, so NIKs are unique within the quarter; serials start above
    every real one, so none is a person of the population. Its change is one of
    `templates`, picked by another affine hash of j.
    """

    kecamatans: tuple[str, ...]
    first_serial: int
    multiplier: int
    offset: int
    key: int
    templates: tuple[str, ...]
    serials: int = field(init=False)
    space: int = field(init=False)

    def __post_init__(self) -> None:
        serials = _MAX_SERIAL - self.first_serial + 1
        object.__setattr__(self, "serials", serials)
        object.__setattr__(self, "space", len(self.kecamatans) * _BIRTH_DAYS * 2 * serials)

    def items(self, start: int, stop: int) -> list[str]:
        """The JSON of synthetic items start..stop-1 (a hot loop: locals only)."""
        kecamatans, births, serial_codes = self.kecamatans, _birth_codes(), _serial_codes()
        templates, count = self.templates, len(self.templates)
        first, serials, space, step = self.first_serial, self.serials, self.space, self.multiplier
        births_per_kecamatan = 2 * _BIRTH_DAYS
        hashed = self.key % (_TEMPLATE_PRIME - 1) + 1
        position = (step * start + self.offset) % space
        items = []
        for j in range(start, stop):
            rest, serial = divmod(position, serials)
            kecamatan, birth = divmod(rest, births_per_kecamatan)
            template = templates[j * hashed % _TEMPLATE_PRIME % count]
            items.append(
                f'{{"nik":"{kecamatans[kecamatan]}{births[birth]}{serial_codes[first + serial]}"'
                + template
            )
            position += step
            if position >= space:
                position -= space
        return items


@dataclass(frozen=True, slots=True)
class QuarterFeed:
    """One published quarter: the real changes (one entry per changed household, its
    members' NIKs and the shared JSON of the change), then `synthetic_count` synthetic ones."""

    quarter: str
    published_at: datetime
    households: tuple[tuple[tuple[str, ...], str], ...] = ()
    # Position in the feed of each changed household's first member.
    starts: array[int] = field(default_factory=lambda: array("q"))
    real_count: int = 0
    synthetic_count: int = 0
    synthetic: _Synthetic | None = None

    @property
    def total(self) -> int:
        return self.real_count + self.synthetic_count

    def items(self, start: int, stop: int) -> list[str]:
        """The JSON of items start..stop-1: real changes first, then synthetic ones."""
        stop = min(stop, self.total)
        real_stop = min(stop, self.real_count)
        items: list[str] = []
        position = start
        index = bisect_right(self.starts, position) - 1
        while position < real_stop:
            niks, fragment = self.households[index]
            first = position - self.starts[index]
            taken = niks[first : first + real_stop - position]
            items.extend('{"nik":"' + nik + '"' + fragment for nik in taken)
            position += len(taken)
            index += 1
        if position < stop and self.synthetic is not None:
            items += self.synthetic.items(position - self.real_count, stop - self.real_count)
        return items


# --- the sandbox's quarters ---------------------------------------------------------------


@dataclass(slots=True)
class QuarterBook:
    """Every published quarter of the sandbox, oldest first."""

    population: Population
    feeds: list[QuarterFeed] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _synthetic_base: tuple[tuple[str, ...], int] | None = None

    def __post_init__(self) -> None:
        if not self.feeds:
            quarter = self.population.quarter
            self.feeds.append(QuarterFeed(quarter=quarter, published_at=published_at(quarter)))

    def find(self, quarter: str) -> QuarterFeed | None:
        return next((feed for feed in self.feeds if feed.quarter == quarter), None)

    def plan(self, changes: int | None) -> tuple[QuarterFeed, list[HouseholdRecord]]:
        """The next quarter's feed and the population's households as it leaves them."""
        population = self.population
        previous = self.feeds[-1].quarter
        quarter = next_quarter(previous)
        rng = random.Random(f"quarter-{population.seed}-{quarter}")  # noqa: S311 - not secret
        chosen = _choose(rng, population.households, changes)
        records = list(population.households)
        changed: list[tuple[tuple[str, ...], str]] = []
        starts = array("q")
        real = 0
        for index in chosen:
            transition = _transition(rng, records[index], quarter, previous)
            records[index] = transition.record
            starts.append(real)
            niks = tuple(person.nik for person in transition.record.members)
            changed.append((niks, _fragment(transition)))
            real += len(niks)
        picked = set(chosen)
        for index, record in enumerate(records):
            if index not in picked:
                records[index] = _with_programmes_paid_for(record, quarter)
        synthetic_count = 0 if changes is None else changes - real
        feed = QuarterFeed(
            quarter=quarter,
            published_at=published_at(quarter),
            households=tuple(changed),
            starts=starts,
            real_count=real,
            synthetic_count=synthetic_count,
            synthetic=self._synthetic(quarter, synthetic_count) if synthetic_count else None,
        )
        return feed, records

    def publish(self, feed: QuarterFeed, records: list[HouseholdRecord]) -> None:
        """Make `feed` the newest quarter and `records` the population's current state."""
        population = self.population
        # The population is shared with the look-up and the participation queue, so it is
        # updated in place: the households it lists, its NIK index and its quarter.
        by_nik = population._by_nik
        for old, new in zip(population.households, records, strict=True):
            if new is not old:
                for person in new.members:
                    by_nik[person.nik] = (person, new)
        population.households = tuple(records)
        population.quarter = feed.quarter
        self.feeds.append(feed)

    def _synthetic(self, quarter: str, count: int) -> _Synthetic:
        kecamatans, first_serial = self._synthetic_space()
        digest = hashlib.sha256(f"synthetic-{self.population.seed}-{quarter}".encode()).digest()
        multiplier, offset, key, templates = (
            int.from_bytes(digest[i : i + 8], "big") for i in range(0, 32, 8)
        )
        synthetic = _Synthetic(
            kecamatans=kecamatans,
            first_serial=first_serial,
            multiplier=1,
            offset=0,
            key=key,
            templates=_templates(templates, quarter),
        )
        space = synthetic.space
        if count > space:
            raise Refusal(400, "invalid_request", "Too many changes for this population.")
        # Coprime with the space, so j ↦ multiplier·j + offset is a bijection of it.
        multiplier = multiplier % space or 1
        while math.gcd(multiplier, space) != 1:
            multiplier += 1
        return dataclasses.replace(synthetic, multiplier=multiplier, offset=offset % space)

    def _synthetic_space(self) -> tuple[tuple[str, ...], int]:
        # The people never change, so this is worked out once.
        if self._synthetic_base is None:
            households = self.population.households
            kecamatans = tuple(sorted({h.kecamatan_code for h in households}))
            serial = max((int(p.nik[12:]) for p in self.population.people()), default=0)
            self._synthetic_base = (kecamatans or (_FALLBACK_KECAMATAN,), serial + 1)
        return self._synthetic_base


def _choose(
    rng: random.Random, households: Sequence[HouseholdRecord], changes: int | None
) -> list[int]:
    """Which households change, in feed order: the seeded share, or whole households
    (every member appears) as many as `changes` items hold."""
    order = list(range(len(households)))
    rng.shuffle(order)
    if changes is None:
        return order[: round(len(households) * CHANGE_SHARE)]
    chosen: list[int] = []
    room = changes
    for index in order:
        if room == 0:
            break
        size = len(households[index].members)
        if size <= room:
            chosen.append(index)
            room -= size
    return chosen


def _with_programmes_paid_for(record: HouseholdRecord, quarter: str) -> HouseholdRecord:
    programmes = tuple(_refreshed(p, quarter) or p for p in record.programmes)
    if all(new is old for new, old in zip(programmes, record.programmes, strict=True)):
        return record
    return dataclasses.replace(record, programmes=programmes)


def _templates(seed: int, quarter: str) -> tuple[str, ...]:
    """Changes of a seeded shadow population, by the same rules as the real ones."""
    shadow = generate_population(_SHADOW_HOUSEHOLDS, seed)
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not secret
    previous = _previous_quarter(quarter)
    households = shadow.households

    def drawn() -> HouseholdRecord:
        return households[int(rng.random() * len(households))]

    return tuple(_fragment(_transition(rng, drawn(), quarter, previous)) for _ in range(_TEMPLATES))


# --- routes -------------------------------------------------------------------------------

BOOK: Final = web.AppKey("quarter_book", QuarterBook)


def add_quarters(app: web.Application, population: Population) -> None:
    """Give the sandbox app its published quarters and their routes."""
    app[BOOK] = QuarterBook(population)
    app.router.add_get(QUARTERS_PATH, _quarters)
    app.router.add_get(QUARTERS_PATH + "/{quarter}/changes", _changes)
    app.router.add_post(ADVANCE_PATH, _advance)


async def _quarters(request: web.Request) -> web.Response:
    feeds = request.app[BOOK].feeds
    return web.json_response(
        {
            "items": [
                {"quarter": feed.quarter, "published_at": feed.published_at.isoformat()}
                for feed in feeds
            ]
        }
    )


async def _changes(request: web.Request) -> web.Response:
    feed = request.app[BOOK].find(request.match_info["quarter"])
    if feed is None:
        raise Refusal(404, "not_found", "No such quarter.")
    position = _position(request.query.get("cursor"), feed)
    limit = _limit(request.query.get("limit"))
    stop = min(position + limit, feed.total)
    items = feed.items(position, stop)
    following = _cursor(feed.quarter, stop) if stop < feed.total else None
    body = '{"items":[' + ",".join(items) + '],"next_cursor":' + json.dumps(following) + "}"
    return web.Response(text=body, content_type="application/json")


async def _advance(request: web.Request) -> web.Response:
    body = await json_object(request) if (await request.read()).strip() else {}
    if set(body) - {"changes"}:
        raise Refusal(400, "invalid_request", "Only changes.")
    changes = body.get("changes")
    if changes is not None and (
        not isinstance(changes, int) or isinstance(changes, bool) or not 0 <= changes <= MAX_CHANGES
    ):
        raise Refusal(400, "invalid_request", f"changes must be 0 to {MAX_CHANGES}.")
    book = request.app[BOOK]
    async with book.lock:
        # Drawing the changes of a large population takes a moment: off the event loop.
        feed, records = await asyncio.to_thread(book.plan, changes)
        book.publish(feed, records)
    return web.json_response(
        {
            "quarter": feed.quarter,
            "published_at": feed.published_at.isoformat(),
            "changes": feed.total,
        }
    )


# --- cursors ------------------------------------------------------------------------------


def _cursor(quarter: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"q{quarter}:{position}".encode()).decode().rstrip("=")


def _position(cursor: str | None, feed: QuarterFeed) -> int:
    """Where a cursor points in the quarter's feed; only cursors this sandbox gave out for
    this quarter are taken (it never gives one out for the start or the end)."""
    if cursor is None:
        return 0
    malformed = Refusal(400, "invalid_request", "cursor is not one this registry gave out.")
    if not _CURSOR.fullmatch(cursor):
        raise malformed
    try:
        decoded = base64.b64decode(cursor + "=" * (-len(cursor) % 4), b"-_", validate=True)
    except binascii.Error:
        raise malformed from None
    match = _POSITION.fullmatch(decoded.decode("ascii", "replace"))
    if match is None or match[1] != feed.quarter or _cursor(match[1], int(match[2])) != cursor:
        raise malformed
    position = int(match[2])
    if position >= feed.total:
        raise malformed
    return position


def _limit(value: str | None) -> int:
    if value is None:
        return _MAX_PAGE
    limit = int(value) if _LIMIT.fullmatch(value) else 0
    if not 1 <= limit <= _MAX_PAGE:
        raise Refusal(400, "invalid_request", f"limit must be 1 to {_MAX_PAGE}.")
    return limit
