"""Sealing and keyed hashing of personal data."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.crypto import KeyRing, SealBroken

KEYS = KeyRing.from_secret("k" * 40)
OTHER_KEYS = KeyRing.from_secret("j" * 40)


@given(st.binary(max_size=500), st.text(max_size=40))
def test_sealed_values_open_with_the_same_key_and_context(plain: bytes, context: str) -> None:
    sealed = KEYS.seal(plain, context=context)
    assert KEYS.unseal(sealed, context=context) == plain


def test_sealing_hides_the_value_and_never_repeats() -> None:
    first = KEYS.seal(b"3302015708890003", context="c")
    second = KEYS.seal(b"3302015708890003", context="c")
    assert first != second and b"3302015708890003" not in first


@pytest.mark.parametrize("attack", ["other_key", "other_context", "flipped_bit", "truncated"])
def test_tampered_or_misplaced_seals_do_not_open(attack: str) -> None:
    sealed = KEYS.seal(b"data", context="row:1")
    with pytest.raises(SealBroken):
        if attack == "other_key":
            OTHER_KEYS.unseal(sealed, context="row:1")
        elif attack == "other_context":
            KEYS.unseal(sealed, context="row:2")
        elif attack == "flipped_bit":
            KEYS.unseal(sealed[:-1] + bytes([sealed[-1] ^ 1]), context="row:1")
        else:
            KEYS.unseal(sealed[:5], context="row:1")


def test_keyed_hashes_are_stable_per_key_and_separate_per_purpose() -> None:
    nik = "3302015708890003"
    assert KEYS.nik_hash(nik) == KeyRing.from_secret("k" * 40).nik_hash(nik)
    assert KEYS.nik_hash(nik) != OTHER_KEYS.nik_hash(nik)
    hashes = {
        KEYS.address_hash("telegram", nik),
        KEYS.address_hash("ussd", nik),
        KEYS.nik_hash(nik),
    }
    assert len(hashes) == 3  # pairwise different: no purpose's hash stands for another's
