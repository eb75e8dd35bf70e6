"""The simulator page's template, filled in one language without a server or a browser."""

from __future__ import annotations

import json
import re

import pytest

from bot.i18n import translator
from handlers.simulator_page import (
    OTHER_PLACEHOLDERS,
    PAGE_TEXTS,
    SCRIPT_TEXTS,
    page_language,
    page_template,
    render_simulator_page,
    render_template,
)
from tests.support.html_page import read_page

HOSTILE = "</script><script>alert(1)</script> & \"quoted\" 'single' <b>"


def test_every_placeholder_is_filled_and_every_text_is_used() -> None:
    template = page_template()
    assert template.is_valid()
    assert set(template.get_identifiers()) == set(PAGE_TEXTS) | OTHER_PLACEHOLDERS
    for language in ("id", "en"):
        page = render_simulator_page(language)
        assert re.findall(r"\$\{?[A-Za-z_]", page) == []
        # The script's regexes keep their end anchor ($$ in the template).
        assert "\\d{7}$/" in page and "#$/" in page


@pytest.mark.parametrize("language", ["id", "en"])
def test_the_page_speaks_one_language(language: str) -> None:
    t = translator(language)
    page = read_page(render_simulator_page(language))
    assert page.html_lang == language
    shown = page.words()
    for key in ("heading", "send", "dial", "cancel", "service_code_label", "note"):
        assert t.gettext(PAGE_TEXTS[key]) in shown
    texts = json.loads(page.scripts["texts"])
    assert texts == {key: t.gettext(message) for key, message in SCRIPT_TEXTS.items()}


def test_indonesian_by_default_and_translated() -> None:
    page = read_page(render_simulator_page("fr"))
    assert page.html_lang == "id"
    assert {"Panggil", "Kirim", "Batal", "Kode layanan", "Nomor baru"} <= set(page.texts)
    assert json.loads(page.scripts["texts"])["failed"] == "Gagal terhubung. Coba lagi."


def test_inserted_text_is_escaped_in_html_and_in_the_json() -> None:
    page = render_template(page_template(), lambda message: HOSTILE + message, "id")
    assert "<script>alert(1)" not in page and "<b>" not in page
    reader = read_page(page)
    # Both scripts are still there and whole: the hostile text closed neither.
    assert set(reader.scripts) == {"texts", None}
    assert "use strict" in reader.scripts[None]
    texts = json.loads(reader.scripts["texts"])
    assert texts["failed"] == HOSTILE + SCRIPT_TEXTS["failed"]
    assert HOSTILE + PAGE_TEXTS["send"] in reader.texts
    assert HOSTILE + PAGE_TEXTS["keypad_label"] in reader.labels


@pytest.mark.parametrize(
    ("requested", "accept_language", "expected"),
    [
        (None, None, "id"),
        ("en", None, "en"),
        ("id", "en-US,en;q=0.9", "id"),
        ("EN-gb", None, "en"),
        ("fr", "en-US", "en"),  # a language we do not serve is as good as none
        ("", "en-US,en;q=0.9", "en"),
        (None, "fr-FR,fr;q=0.9,en;q=0.8,id;q=0.7", "en"),
        (None, "fr-FR, id;q=0.5, en;q=0.4", "id"),
        (None, "en;q=0.2, id;q=0.8", "id"),
        (None, "en;q=0, fr", "id"),
        (None, "*", "id"),
        (None, "en;q=oops, de", "id"),
    ],
)
def test_page_language(requested: str | None, accept_language: str | None, expected: str) -> None:
    assert page_language(requested, accept_language) == expected
