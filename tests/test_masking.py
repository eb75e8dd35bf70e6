"""Name masking for display and name normalisation for matching, as the registry does them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry_client.sandbox.masking import mask_name, normalize_name

LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéèüöÁÉ"
PUNCTUATION = ".'-,"

words = st.text(alphabet=LATIN, min_size=1, max_size=12)
names = st.lists(words, min_size=1, max_size=5).map(" ".join)


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("Siti Aminah", "SI** AM****"),
        ("Budi Santoso", "BU** SA*****"),
        ("I Made Sukarta", "I MA** SU*****"),
        ("Ni Luh Putu Ayu", "NI LU* PU** AY*"),
        ("Sutrisno", "SU******"),
        ("Rina Marbun", "RI** MA****"),
        ("Ma'ruf Amin", "MA'*** AM**"),
        ("Muh. Nasir", "MU*. NA***"),
        ("Siti-Aminah", "SI**-******"),
        ("  siti   aminah ", "SI** AM****"),
        ("", ""),
    ],
)
def test_mask_name_examples(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    "variant",
    ["Siti Aminah", "siti  aminah", "SITI AMINAH.", "Siti-Aminah", " Siti Aminah ", "SitiAminah"],
)
def test_spellings_of_one_name_normalise_alike(variant: str) -> None:
    assert normalize_name(variant) == normalize_name("Siti Aminah")


@pytest.mark.parametrize(
    ("first", "second"),
    [("Ma'ruf", "Maruf"), ("M. Ali", "M Ali"), ("M.Ali", "M. Ali"), ("José", "Jose")],
)
def test_apostrophes_dots_and_accents_do_not_matter(first: str, second: str) -> None:
    assert normalize_name(first) == normalize_name(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [("Siti Aminah", "Siti"), ("Siti Aminah", "Siti Aminah Putri"), ("Budi", "Budu")],
)
def test_different_names_stay_different(first: str, second: str) -> None:
    assert normalize_name(first) != normalize_name(second)


@given(st.text())
def test_masking_keeps_the_number_of_words(name: str) -> None:
    assert len(mask_name(name).split()) == len(name.split())


@given(st.text())
def test_masking_never_reveals_more_than_two_letters_per_word(name: str) -> None:
    for word in mask_name(name).split():
        assert sum(char.isalnum() for char in word) <= 2


@given(st.text())
def test_masked_words_keep_their_length(name: str) -> None:
    assert [len(word) for word in mask_name(name).split()] == [len(w) for w in name.split()]


@given(names)
def test_the_revealed_letters_are_the_first_two_upper_cased(name: str) -> None:
    for original, masked in zip(name.split(), mask_name(name).split(), strict=True):
        assert masked[:2] == original[:2].upper()
        assert set(masked[2:]) <= {"*"}


@given(st.text())
def test_masking_a_masked_name_changes_nothing(name: str) -> None:
    assert mask_name(mask_name(name)) == mask_name(name)


@given(names)
def test_normalising_ignores_case(name: str) -> None:
    assert normalize_name(name.upper()) == normalize_name(name.lower()) == normalize_name(name)


@given(names, st.lists(st.sampled_from([" ", "  ", *PUNCTUATION]), min_size=1))
def test_normalising_ignores_spacing_and_punctuation(name: str, separators: list[str]) -> None:
    noisy = "".join(
        word + separators[index % len(separators)] for index, word in enumerate(name.split())
    )
    assert normalize_name(noisy) == normalize_name(name)


@given(st.text())
def test_normalising_is_idempotent_and_keeps_only_letters_and_digits(name: str) -> None:
    normal = normalize_name(name)
    assert normalize_name(normal) == normal
    assert all(char.isalnum() for char in normal)
