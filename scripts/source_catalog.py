"""Fill the English catalog from the messages themselves: English is the source language,
so each message is its own translation. Run by `make locales-update` after the merge, so
that every catalog, English included, translates every message (and a message whose
English changes gets its new text at once).

    python scripts/source_catalog.py bot/locales/en/LC_MESSAGES/messages.po
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po


def fill(path: Path) -> int:
    """Give every empty entry its own text; the count filled."""
    with path.open("rb") as handle:
        catalog = read_po(handle, locale="en")
    filled = 0
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.id, tuple | list):
            forms = message.string if isinstance(message.string, tuple | list) else ()
            if not forms or not all(forms):
                message.string = (message.id[0], message.id[1])
                filled += 1
        elif not message.string:
            message.string = message.id
            filled += 1
    with path.open("wb") as handle:
        write_po(handle, catalog, width=76, sort_output=True, no_location=True)
    return filled


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(f"{argument}: {fill(Path(argument))} filled from the source")
