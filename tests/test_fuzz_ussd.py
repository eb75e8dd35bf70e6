"""Property-based: POST /ussd over real HTTP with Africa's Talking requests of every shape,
on SQLite and PostgreSQL. Whatever arrives, the gateway gets a 4xx for a request it cannot
use, or a 200 with `CON `/`END ` and one screen of at most 160 characters, never a 5xx."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from handlers.ussd import SCREEN_LIMIT
from tests.test_fuzz_dialogs import names, valid_niks, weighted

FUZZ_HTTP = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# --- requests ---------------------------------------------------------------------------------

# Form values travel as UTF-8: any character but a lone surrogate, which no client can encode.
any_text = st.text(st.characters(codec="utf-8"), max_size=40)
segments = st.one_of(
    st.sampled_from(["", "1", "2", "3", "9", "0", "00", "99", " 1 "]),
    st.text("0123456789", min_size=1, max_size=20),
    valid_niks,
    names,
    st.sampled_from(["cek", "Siti Aminah", "halo", "🙏", "👨‍👩‍👧‍👦", "Rp 750.000"]),
    any_text,
    st.text(st.characters(codec="utf-8"), min_size=300, max_size=2500),  # very long
)
# Each answer is a segment; `*` inside one makes more (or empty) segments, as on a phone.
# Two sessions in three answer like a person following the screens (numbers, a NIK, a name),
# so that requests get past the privacy notice and into every menu.
cooperative = st.sampled_from([str(n) for n in range(1, 10)] + ["0", "00"]) | valid_niks | names
answers = weighted(
    (1, st.lists(segments, min_size=1, max_size=8)),
    (
        2,
        st.builds(
            lambda first, head, tail: [first, *head, *tail],
            # Agree (and at the menu: check), or switch to English and agree, then go on.
            st.sampled_from(["1", "1*1", "3*2*1", "1*5", "1*6"]),
            st.lists(cooperative, max_size=10),
            st.lists(segments, max_size=3),
        ),
    ),
)
# Mostly phones of Indonesia in the spellings gateways use; some that are no phone at all.
known_phones = st.sampled_from(
    ["+628123456789", "628123456789", "08123456789", "+62 812-3456-789", "+0628123456789"]
)
new_phones = st.text("0123456789", min_size=9, max_size=10).map("+628".__add__)
phones = weighted(
    (5, known_phones), (4, new_phones), (1, st.sampled_from(["", "  ", "+0", "12"]) | any_text)
)
odd_session_ids = st.sampled_from([" ", "", "\t"]) | any_text
session_ids = weighted(
    (3, st.just("ATUid_fuzz")), (6, any_text.map("ATUid_".__add__)), (1, odd_session_ids)
)
extra_fields = st.lists(st.tuples(any_text, any_text), max_size=4)


@st.composite
def calls(draw: st.DrawFn) -> tuple[list[tuple[str, str]], list[str]]:
    """A session: the form fields but `text`, and the cumulative `text` of each request."""
    form = [
        ("sessionId", draw(session_ids)),
        ("serviceCode", draw(st.sampled_from(["*123*7#", "", "*#"]) | any_text)),
        ("phoneNumber", draw(phones)),
        ("networkCode", draw(st.sampled_from(["51010", ""]) | any_text)),
    ]
    keep = st.sampled_from([True] * 19 + [False])  # one field in twenty left out
    form = [field for field in form if draw(keep, label="keep field")]
    form += draw(extra_fields)  # unknown fields, or a second copy of a known one
    said = draw(answers)
    paths = ["*".join(said[:n]) for n in range(len(said) + 1)]
    if draw(st.booleans(), label="without the dial"):
        paths = paths[1:]
    return form, paths


# --- the properties ---------------------------------------------------------------------------


async def post(http: aiohttp.ClientSession, url: str, form: list[tuple[str, str]]) -> str | None:
    """The answer to one request: its text if 200, None for a 4xx; never a 5xx."""
    body = urlencode(form).encode()  # as a gateway sends it: UTF-8, percent-encoded
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with http.post(url, data=body, headers=headers) as response:
        answer = await response.text()
        assert response.status < 500, (response.status, answer)
        if response.status != 200:
            assert 400 <= response.status < 500 and "Traceback" not in answer
            event(f"refused: {response.status} {answer[:40]}")
            return None
        assert response.content_type == "text/plain"
        return answer


@FUZZ_HTTP
@given(call=calls())
async def test_any_request_gets_a_screen_or_a_4xx(
    ussd_url: str,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    call: tuple[list[tuple[str, str]], list[str]],
) -> None:
    form, paths = call
    for path in paths:
        logged_before = len(caplog.records)  # not cleared: conftest reads them all at the end
        note(f"text={path!r}")
        answer = await post(http, ussd_url, [*form, ("text", path)])
        if answer is None:
            continue
        assert answer.startswith(("CON ", "END ")), answer
        event(f"{answer[:3]} {answer[4:24]!r}")  # --hypothesis-show-statistics
        screen = answer[4:]
        assert len(screen) <= SCREEN_LIMIT, screen
        problems = [
            r.getMessage()
            for r in caplog.records[logged_before:]
            if r.name.startswith("handlers") and r.levelno >= logging.WARNING
        ]
        # Not cut to fit, and no failure hidden behind the "service is busy" screen.
        assert problems == [], (problems, screen)


# Found by the fuzz: a superscript digit where choices were offered raised ValueError in
# the dialog router, and the endpoint answered "busy" and ended the session.
async def test_a_superscript_digit_gets_the_question_again(
    ussd_url: str, http: aiohttp.ClientSession
) -> None:
    form = [("sessionId", "ATUid_sup"), ("phoneNumber", "+6281100000002"), ("serviceCode", "*1#")]
    first = await post(http, ussd_url, [*form, ("text", "")])
    assert first is not None and first.startswith("CON ") and "1 Setuju" in first
    again = await post(http, ussd_url, [*form, ("text", "²")])
    assert again is not None and again.startswith("CON ") and "1 Setuju" in again
