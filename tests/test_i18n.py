"""Catalogs: Indonesian is complete and in step with the code; formatting is local."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import DEFAULT_LANGUAGE, LOCALES_DIR, normalize_language, translator

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"gettext": None, "ngettext": (1, 2), "N_": None}


def source_messages() -> set[str]:
    found: set[str] = set()
    for folder in ("bot", "handlers"):
        for _, _, message, _, _ in extract_from_dir(
            ROOT / folder, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def catalog(language: str):  # type: ignore[no-untyped-def]
    with (LOCALES_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=language)


def test_indonesian_catalog_translates_every_message_in_the_code() -> None:
    indonesian = catalog("id")
    untranslated = sorted(
        message
        for message in source_messages()
        if (entry := indonesian.get(message)) is None
        or not (all(entry.string) if isinstance(entry.string, tuple) else entry.string)
        or entry.fuzzy
    )
    assert untranslated == []


@pytest.mark.parametrize("language", ["id", "en"])
def test_catalogs_hold_no_message_the_code_no_longer_uses(language: str) -> None:
    stale = {
        entry.id if isinstance(entry.id, str) else entry.id[0]
        for entry in catalog(language)
        if entry.id
    }
    assert stale - source_messages() == set()


def test_translations_keep_every_placeholder() -> None:
    formatter = string.Formatter()
    for entry in catalog("id"):
        if not entry.id:
            continue
        source = entry.id if isinstance(entry.id, str) else entry.id[-1]
        translated = entry.string if isinstance(entry.string, str) else entry.string[0]
        wanted = {name for _, name, _, _ in formatter.parse(source) if name}
        given = {name for _, name, _, _ in formatter.parse(translated) if name}
        # Quarters are spelled with a roman numeral in Indonesian, a digit in English.
        assert given - {"roman", "number"} == wanted - {"roman", "number"}, source


def test_indonesian_is_the_default_and_unknown_languages_fall_back_to_it() -> None:
    indonesian = catalog("id")
    help_in_indonesian = indonesian.get("Help").string
    assert help_in_indonesian and help_in_indonesian != "Help"
    assert translator("id").gettext("Help") == help_in_indonesian
    assert translator("en").gettext("Help") == "Help"
    # No language, or one we do not serve: Indonesian text, not English and not the msgid.
    assert normalize_language(None) == DEFAULT_LANGUAGE
    assert normalize_language("") == DEFAULT_LANGUAGE
    assert normalize_language("en-US") == "en"
    for unknown in ("fr-FR", "jv", "xx"):
        assert normalize_language(unknown) == DEFAULT_LANGUAGE
        fallback = translator(unknown)
        assert fallback.language == "id"
        assert fallback.gettext("Help") == help_in_indonesian
        assert fallback.rupiah(750000) == translator("id").rupiah(750000)
    # Every translated message reads the same through the fallback as in the catalog.
    for entry in indonesian:
        if entry.id and isinstance(entry.id, str) and entry.string and not entry.fuzzy:
            assert translator("fr").gettext(entry.id) == entry.string, entry.id


def test_rupiah_and_dates_are_formatted_for_indonesia() -> None:
    assert translator("id").rupiah(750000) == "Rp750.000"
    assert translator("en").rupiah(1_200_000) == "Rp1.200.000"
    assert translator("id").date(datetime(2026, 10, 18, tzinfo=UTC)) == "18 Okt 2026"
