"""How the sandbox registry masks a name for display and compares names for a match."""

from __future__ import annotations

import unicodedata

_REVEALED_PER_WORD = 2


def mask_name(name: str) -> str:
    """Mask a name the way the registry shows it: "Siti Aminah" -> "SI** AM****".

    Each whitespace-separated word keeps its first two letters (upper case); every later
    letter or digit becomes "*". Punctuation stays where it is ("Ma'ruf" -> "MA'***",
    "Muh." -> "MU*."), because it reveals no letters and keeps the name recognisable.
    Runs of whitespace become one space.
    """
    return " ".join(_mask_word(word) for word in name.split())


def _mask_word(word: str) -> str:
    revealed = 0
    out = []
    for char in word:
        if not char.isalnum():
            out.append(char)
        elif revealed < _REVEALED_PER_WORD:
            revealed += 1
            upper = char.upper()
            # Some letters grow when upper-cased ("ß" -> "SS"); keeping those as they are
            # means one input letter never shows as two.
            out.append(upper if len(upper) == 1 else char)
        else:
            out.append("*")
    return "".join(out)


def normalize_name(name: str) -> str:
    """The form two names are compared in: case, accents, spacing and punctuation ignored.

    "Siti Aminah", "siti  aminah", "SITI AMINAH." and "Siti-Aminah" all give "sitiaminah".
    Spaces are dropped rather than collapsed so that "M. Ali", "M.Ali" and "M Ali" agree.
    """
    # Decompose before and after case folding: each step can produce input for the other
    # ("ℌ" only becomes "H" when decomposed, and "H" only becomes "h" when folded).
    folded = unicodedata.normalize("NFKD", name).casefold()
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(char for char in decomposed if char.isalnum())
