"""NIK parsing: separators accepted, every rejection with its own reason."""

from __future__ import annotations

import calendar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.nik import NIK_LENGTH, InvalidNik, NikProblem, parse_nik, province_codes

VALID = "3302015708890003"  # Banyumas, woman born 17-08-1989


def test_plain_nik_is_accepted() -> None:
    nik = parse_nik(VALID)
    assert nik.value == VALID
    assert nik.province_code == "33"
    assert nik.kecamatan_code == "330201"
    assert nik.is_female


@pytest.mark.parametrize(
    "typed",
    ["3302 0157 0889 0003", "3302.0157.0889.0003", "3302-0157-0889-0003", " 3302015708890003 \n"],
)
def test_separators_between_digits_are_ignored(typed: str) -> None:
    assert parse_nik(typed).value == VALID


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("", NikProblem.EMPTY),
        ("  - . ", NikProblem.EMPTY),
        ("330201570889000", NikProblem.WRONG_LENGTH),
        ("33020157088900031", NikProblem.WRONG_LENGTH),
        ("33020157O8890003", NikProblem.NOT_DIGITS),
        ("NIK 3302015708890003", NikProblem.NOT_DIGITS),
        ("３３０２０１５７０８８９０００３", NikProblem.NOT_DIGITS),  # full-width digits
        ("3302010008890003", NikProblem.BAD_BIRTH_DATE),  # day 0
        ("3302013208890003", NikProblem.BAD_BIRTH_DATE),  # day 32
        ("3302013508890003", NikProblem.BAD_BIRTH_DATE),  # 35: neither a man's nor a woman's
        ("3302017208890003", NikProblem.BAD_BIRTH_DATE),  # 72 = woman's day 32
        ("3302011513890003", NikProblem.BAD_BIRTH_DATE),  # month 13
        ("3302011500890003", NikProblem.BAD_BIRTH_DATE),  # month 0
        ("3302013104890003", NikProblem.BAD_BIRTH_DATE),  # 31 April
        ("3302013002890003", NikProblem.BAD_BIRTH_DATE),  # 30 February
        ("9902015708890003", NikProblem.UNKNOWN_PROVINCE),
        ("1002015708890003", NikProblem.UNKNOWN_PROVINCE),
    ],
)
def test_rejections_name_their_reason(typed: str, problem: NikProblem) -> None:
    with pytest.raises(InvalidNik) as caught:
        parse_nik(typed)
    assert caught.value.problem is problem


def test_wrong_length_reports_how_many_digits() -> None:
    with pytest.raises(InvalidNik) as caught:
        parse_nik("3302 0157 0889 000")
    assert caught.value.digits == 15


def test_february_29_is_possible_whatever_the_century() -> None:
    assert parse_nik("3302012902000003").value == "3302012902000003"


def test_unknown_kecamatan_is_left_to_the_registry() -> None:
    # 33 99 99 is no kecamatan, but regions split after a NIK was issued keep old codes.
    assert parse_nik("3399995708890003").kecamatan_code == "339999"


def test_new_papua_provinces_are_known() -> None:
    assert {"92", "93", "95", "96"} <= province_codes()


def test_repr_never_shows_the_number() -> None:
    nik = parse_nik(VALID)
    assert VALID not in repr(nik) and VALID not in str(nik) and VALID not in f"{nik}"


def test_rejection_message_never_contains_the_input() -> None:
    with pytest.raises(InvalidNik) as caught:
        parse_nik("33020157088900")
    assert "33020157088900" not in str(caught.value)


@st.composite
def valid_niks(draw: st.DrawFn) -> str:
    province = draw(st.sampled_from(sorted(province_codes())))
    region = draw(st.integers(0, 9999))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, calendar.monthrange(2000, month)[1]))
    female = draw(st.booleans())
    year = draw(st.integers(0, 99))
    serial = draw(st.integers(1, 9999))
    return f"{province}{region:04d}{day + 40 * female:02d}{month:02d}{year:02d}{serial:04d}"


@given(valid_niks(), st.lists(st.sampled_from([" ", ".", "-", "  "]), min_size=15, max_size=15))
def test_any_valid_nik_parses_with_any_separators(nik: str, separators: list[str]) -> None:
    typed = "".join(
        digit + separator for digit, separator in zip(nik, [*separators, ""], strict=True)
    )
    parsed = parse_nik(typed)
    assert parsed.value == nik
    assert parsed.is_female == (int(nik[6:8]) > 40)


@given(
    st.text(alphabet="0123456789", min_size=0, max_size=30).filter(lambda s: len(s) != NIK_LENGTH)
)
def test_any_other_length_of_digits_is_wrong_length_or_empty(digits: str) -> None:
    with pytest.raises(InvalidNik) as caught:
        parse_nik(digits)
    assert caught.value.problem in (NikProblem.WRONG_LENGTH, NikProblem.EMPTY)


@given(st.text(max_size=40))
def test_parse_either_returns_sixteen_digits_or_raises(text: str) -> None:
    try:
        nik = parse_nik(text)
    except InvalidNik:
        return
    assert len(nik.value) == NIK_LENGTH and nik.value.isascii() and nik.value.isdigit()
