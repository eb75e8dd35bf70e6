"""Translators per language, loaded from the gettext catalogs under bot/locales/.

There is no global "current language": code that speaks to a person is handed the
Translator for that person's language. Indonesian is the default.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from babel import Locale
from babel.dates import format_date
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import NullTranslations, Translations

# Inside the package, so that a wheel or a non-editable install carries the catalogs.
LOCALES_DIR: Final = Path(__file__).resolve().parent / "locales"
DOMAIN: Final = "messages"
DEFAULT_LANGUAGE: Final = "id"
SUPPORTED_LANGUAGES: Final = ("id", "en", "jv", "su")
# Formatting locales: English speakers here still pay in Rupiah with Indonesian grouping.
_FORMAT_LOCALES: Final = {"id": "id_ID", "en": "en_ID", "jv": "jv_ID", "su": "su_ID"}
# Each language's own name, shown in the language picker (not translated on purpose).
LANGUAGE_NAMES: Final = {
    "id": "Bahasa Indonesia",
    "en": "English",
    "jv": "Basa Jawa",
    "su": "Basa Sunda",
}


class CatalogMissing(FileNotFoundError):
    """A supported language has no catalog: the install is broken, not merely untranslated."""


def N_(message: str) -> str:
    """Mark a string for extraction where it is defined; translate it where it is shown."""
    return message


@dataclass(frozen=True, slots=True)
class Translator:
    language: str
    translations: NullTranslations
    locale: Locale

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def rupiah(self, amount: int) -> str:
        return format_currency(
            amount, "IDR", locale=self.locale, currency_digits=False, format="¤#,##0"
        )

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def date(self, moment: datetime) -> str:
        return format_date(moment, format="medium", locale=self.locale)


def normalize_language(code: str | None) -> str:
    """Map a client's language tag ("en-US", "id") to one we serve, else the default."""
    if not code:
        return DEFAULT_LANGUAGE
    primary = code.replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE


@functools.cache
def translator(language: str) -> Translator:
    """The Translator for a supported language (cached: catalogs are read once)."""
    language = normalize_language(language)
    return Translator(
        language=language,
        translations=_load_catalog(language),
        locale=Locale.parse(_FORMAT_LOCALES[language]),
    )


def load_catalogs() -> None:
    """Read every supported catalog now: a broken install fails at start, in one line,
    instead of at a person's first message."""
    for language in SUPPORTED_LANGUAGES:
        translator(language)


def _load_catalog(language: str) -> NullTranslations:
    # Read the .po text directly: there is no compiled .mo to fall out of date.
    po_path = LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po_path.is_file():
        raise CatalogMissing(f"no {language!r} translations at {po_path}")
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)
