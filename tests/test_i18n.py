"""Catalogs: Indonesian, English, Javanese and Sundanese are complete and in step with
the code (English, the source, is filled from the messages by `make locales`);
formatting is local in every language."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.dialogs.status_report import quarter_words
from bot.i18n import (
    DEFAULT_LANGUAGE,
    LOCALES_DIR,
    SUPPORTED_LANGUAGES,
    CatalogMissing,
    load_catalogs,
    normalize_language,
    translator,
)

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


def test_the_four_languages_are_served() -> None:
    assert set(SUPPORTED_LANGUAGES) == {"id", "en", "jv", "su"}
    assert SUPPORTED_LANGUAGES[0] == DEFAULT_LANGUAGE == "id"


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_every_catalog_translates_every_message_in_the_code(language: str) -> None:
    translated = catalog(language)
    untranslated = sorted(
        message
        for message in source_messages()
        if (entry := translated.get(message)) is None
        or not (all(entry.string) if isinstance(entry.string, tuple) else entry.string)
    )
    assert untranslated == []


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_no_translation_is_fuzzy(language: str) -> None:
    assert [entry.id for entry in catalog(language) if entry.id and entry.fuzzy] == []


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_catalogs_hold_no_message_the_code_no_longer_uses(language: str) -> None:
    stale = {
        entry.id if isinstance(entry.id, str) else entry.id[0]
        for entry in catalog(language)
        if entry.id
    }
    assert stale - source_messages() == set()


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_translations_keep_every_placeholder(language: str) -> None:
    formatter = string.Formatter()
    for entry in catalog(language):
        if not entry.id:
            continue
        source = entry.id if isinstance(entry.id, str) else entry.id[-1]
        forms = [entry.string] if isinstance(entry.string, str) else list(entry.string)
        wanted = {name for _, name, _, _ in formatter.parse(source) if name}
        for translated in (form for form in forms if form):
            given = {name for _, name, _, _ in formatter.parse(translated) if name}
            # Quarters are spelled with a roman numeral in Indonesian, a digit in English.
            assert given - {"roman", "number"} == wanted - {"roman", "number"}, source


def test_a_missing_catalog_stops_the_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("bot.i18n.LOCALES_DIR", tmp_path)
    translator.cache_clear()
    try:
        with pytest.raises(CatalogMissing, match="'id'"):
            load_catalogs()
    finally:
        translator.cache_clear()


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
    assert normalize_language("jv-ID") == "jv" and normalize_language("su") == "su"
    for unknown in ("fr-FR", "ms", "xx"):
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
    assert translator("jv").rupiah(750000) == translator("su").rupiah(750000) == "Rp750.000"
    assert translator("jv").date(datetime(2026, 11, 28, tzinfo=UTC)) == "28 Nov 2026"
    assert translator("su").date(datetime(2026, 11, 28, tzinfo=UTC)) == "28 Nop 2026"


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_quarters_are_words_in_every_language(language: str) -> None:
    t = translator(language)
    spelled = [quarter_words(f"2026Q{n}", t) for n in (1, 2, 3, 4)]
    assert len(set(spelled)) == 4 and all("2026" in words for words in spelled)
    assert not any(words.startswith(("Q", "2026Q")) for words in spelled)
    if language != "en":
        assert spelled[3] != translator("en").gettext("fourth quarter of {year}").format(year=2026)
