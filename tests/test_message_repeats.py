"""The recent message ids a conversation keeps to apply a repeated delivery once."""

from __future__ import annotations

from bot.message_repeats import KEPT, STORED_LENGTH, already_applied, with_applied


def test_a_message_is_a_repeat_only_once_applied() -> None:
    recent = with_applied(None, 7)
    assert already_applied(recent, 7)
    assert not already_applied(recent, 8)
    assert not already_applied(None, 7)
    assert not already_applied(with_applied(None, 17), 7)  # whole ids, not digits


def test_only_the_last_ones_are_kept_within_the_column() -> None:
    recent = None
    for message_id in range(2_147_483_000, 2_147_483_000 + 3 * KEPT):
        recent = with_applied(recent, message_id)
    assert recent is not None and len(recent) <= STORED_LENGTH
    kept = [int(n) for n in recent.split()]
    assert kept == list(range(2_147_483_000 + 2 * KEPT, 2_147_483_000 + 3 * KEPT))


def test_ids_longer_than_expected_still_fit_the_column() -> None:
    recent = None
    for n in range(KEPT):
        recent = with_applied(recent, 10**15 + n)
    assert recent is not None and len(recent) <= STORED_LENGTH
    assert already_applied(recent, 10**15 + KEPT - 1)
