"""Phone numbers as the USSD gateway sends them, in one spelling (E.164).

`628…`, `08…`, `+62 …`, `+62-…` and `+062…` are one phone: a limit or a conversation kept
per phone must not be escaped by spelling the number differently.
"""

from __future__ import annotations

import functools

import phonenumbers

DEFAULT_REGION = "ID"
MAX_LENGTH = 32


# A USSD session sends the same number with each of its requests, and parsing it is a
# few percent of a request's CPU. Held in this process's memory only, and soon evicted.
@functools.lru_cache(maxsize=4096)
def normalize_phone(raw: str) -> str | None:
    """The number in E.164 (`+628123456789`), or None when it is not a possible number."""
    compact = "".join(ch for ch in raw if ch not in " -().")
    if not compact or len(compact) > MAX_LENGTH:
        return None
    if compact.startswith("+0"):  # "+062…": an international prefix with the trunk zero
        compact = "+" + compact[1:].lstrip("0")
    elif compact.startswith("62"):
        compact = "+" + compact
    try:
        number = phonenumbers.parse(compact, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
