"""The status answer in plain words: decile, Rupiah, quarters, reasons, next steps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.dialogs.status_report import REASONS, quarter_short, quarter_words, render_report
from bot.i18n import translator
from registry_client.models import REASON_CODES, Household, ProgrammeStatus, StatusReport


def make_report(*programmes: ProgrammeStatus, decile: int = 3) -> StatusReport:
    return StatusReport(
        quarter="2026Q4",
        name_masked="SI** AM****",
        household=Household(decile=decile, kecamatan_code="330201", members=4),
        programmes=programmes,
        updated_at=datetime(2026, 10, 18, tzinfo=UTC),
    )


PKH = ProgrammeStatus("PKH", "active", since="2025Q1", amount_idr=750000, period="2026Q4")
PBI = ProgrammeStatus("PBI-JK", "active", since="2024Q3")
BPNT_ENDED = ProgrammeStatus("BPNT", "ended", until="2026Q3", reason_code="decile_above_cutoff")


def test_full_answer_in_indonesian() -> None:
    text = render_report(make_report(PKH, PBI, BPNT_ENDED), translator("id"), ()).text
    assert "SI** AM****" in text
    assert "Triwulan IV 2026" in text
    assert "Desil kesejahteraan 3 dari 10" in text and "21–30 persen" in text
    assert "Rp750.000" in text
    assert "sejak Triwulan I 2025" in text
    assert "Triwulan III 2026" in text
    assert "decile_above_cutoff" not in text
    assert "Tidak terdaftar: BLT, PIP." in text
    assert "18 Okt 2026" in text
    assert "sanggahan" in text  # an ended programme points to the objection route
    assert "OTP" in text


def test_full_answer_in_english() -> None:
    text = render_report(make_report(PKH, BPNT_ENDED), translator("en"), ()).text
    assert "fourth quarter of 2026" in text
    assert "Welfare decile 3 of 10" in text
    assert (
        "PKH (Family Hope Programme, conditional cash): active since the first quarter of 2025"
        in text
    )
    assert "Rp750.000 for the fourth quarter of 2026" in text
    assert (
        "ended after the third quarter of 2026. Reason: the household's decile is above the "
        "programme's limit." in text
    )


@pytest.mark.parametrize("language", ["id", "en"])
@pytest.mark.parametrize("reason", [*REASON_CODES, "some_new_code", None])
def test_no_reason_is_ever_shown_as_a_raw_code(language: str, reason: str | None) -> None:
    ended = ProgrammeStatus("BPNT", "ended", until="2026Q3", reason_code=reason)
    refused = ProgrammeStatus("PKH", "refused", reason_code=reason)
    reply = render_report(make_report(ended, refused), translator(language), ())
    for shown in (reply.text, reply.brief or ""):
        assert "_" not in shown  # every code with an underscore stays out of sight
        assert "Reason: ." not in shown and "Alasan: ." not in shown


def test_every_known_reason_has_plain_words() -> None:
    assert set(REASONS) == set(REASON_CODES)


def test_no_programme_still_says_what_to_do() -> None:
    text = render_report(make_report(decile=7), translator("id"), ()).text
    assert "Tidak terdaftar: PKH, BPNT, PBI-JK, BLT, PIP." in text
    assert "perbaikan data" in text


def test_brief_answer_keeps_the_amount_when_there_is_room() -> None:
    brief = render_report(make_report(PKH), translator("id"), ()).brief
    assert brief is not None
    assert "PKH aktif Rp750.000" in brief and "SI** AM****" in brief


@pytest.mark.parametrize(
    ("quarter", "id_words", "en_words", "en_short"),
    [
        ("2026Q4", "Triwulan IV 2026", "fourth quarter of 2026", "Q4 2026"),
        ("2025Q1", "Triwulan I 2025", "first quarter of 2025", "Q1 2025"),
        ("2025Q2", "Triwulan II 2025", "second quarter of 2025", "Q2 2025"),
        ("2025Q3", "Triwulan III 2025", "third quarter of 2025", "Q3 2025"),
        ("garbage", "garbage", "garbage", "garbage"),
        ("2026Q5", "2026Q5", "2026Q5", "2026Q5"),
    ],
)
def test_quarters_in_words(quarter: str, id_words: str, en_words: str, en_short: str) -> None:
    assert quarter_words(quarter, translator("id")) == id_words
    assert quarter_words(quarter, translator("en")) == en_words
    assert quarter_short(quarter, translator("en")) == en_short
    assert quarter_short(quarter, translator("id")) == id_words
