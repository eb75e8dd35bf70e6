"""The USSD simulator page (GET /simulator) driven in headless Chromium against its endpoint.

Assertions on the USSD screens lean on what does not depend on translations: CON/END,
numbers, the NIK, and the exact screens a reference `UssdPhone` gets from the same server.
The page's own words are Indonesian unless the visitor asks for English.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Response,
    Route,
    async_playwright,
    expect,
)

from bot.app import Services
from bot.i18n import LANGUAGE_NAMES, SUPPORTED_LANGUAGES, translator
from handlers.simulator_page import PAGE_TEXTS
from handlers.web import create_web_app
from registry_client.sandbox import RunningSandbox
from tests.support.html_page import PageReader, read_page
from tests.ussd_phone import UssdPhone

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MOBILE = {"width": 360, "height": 780}


def require_chromium() -> None:
    # Called from the test body, so a missing browser is a failure, never a skip.
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the simulator tests need Debian's Chromium "
            "(apt-get install chromium); they do not use `playwright install`."
        )


@dataclass
class Simulator:
    """The web app on a test server plus a lazily launched Chromium looking at it."""

    server: TestServer
    playwright: Playwright | None = None
    browser: Browser | None = None
    console_errors: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def open(self, path: str = "/simulator", *, locale: str = "id-ID") -> Page:
        """The page in a browser set to `locale` (its Accept-Language): Indonesian unless told."""
        require_chromium()
        self.playwright = await async_playwright().start()
        self.browser = await self.playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = await self.browser.new_page(viewport=MOBILE, locale=locale)
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.console_errors.append(f"pageerror: {error}"))
        page.on("request", lambda request: self.requests.append(request))
        response = await page.goto(self.url(path))
        assert response is not None and response.status == 200
        return page

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.type}: {message.text}")

    def ussd_forms(self) -> list[dict[str, str]]:
        """The Africa's Talking form of every POST /ussd the page made, in order."""
        forms = []
        for request in self.requests:
            if request.method == "POST" and urlsplit(request.url).path == "/simulator/ussd":
                fields = parse_qs(request.post_data or "", keep_blank_values=True)
                forms.append({key: values[0] for key, values in fields.items()})
        return forms

    async def close(self) -> None:
        try:
            if self.browser is not None:
                await self.browser.close()
        finally:
            if self.playwright is not None:
                await self.playwright.stop()


@pytest.fixture
async def simulator(services: Services) -> AsyncIterator[Simulator]:
    server = TestServer(
        create_web_app(services.ussd, services.health, simulator=True), host="127.0.0.1"
    )
    await server.start_server()
    running = Simulator(server)
    try:
        yield running
    finally:
        await running.close()
        await server.close()


@pytest.fixture
async def reference_phone(simulator: Simulator) -> AsyncIterator[UssdPhone]:
    """Another handset on the same server: what a screen should read, whatever the wording."""
    async with aiohttp.ClientSession() as http:
        yield UssdPhone(http, simulator.url("/ussd"), phone="+628009999999")


def is_ussd(response: Response) -> bool:
    return urlsplit(response.url).path == "/simulator/ussd"


async def settled(page: Page) -> None:
    """The answer to the latest request is on the screen."""
    await expect(page.get_by_test_id("screen")).to_have_attribute("aria-busy", "false")


async def dial(page: Page) -> None:
    async with page.expect_response(is_ussd):
        await page.get_by_test_id("dial-button").click()
    await settled(page)


async def reply(page: Page, text: str, *, with_enter: bool = False) -> None:
    box = page.get_by_test_id("reply-input")
    await box.fill(text)
    async with page.expect_response(is_ussd):
        if with_enter:
            await box.press("Enter")
        else:
            await page.get_by_test_id("send-button").click()
    await settled(page)


async def screen_text(page: Page) -> str:
    # innerText follows CSS: the line breaks survive only if the screen preserves them.
    return await page.get_by_test_id("screen").inner_text()


async def test_status_check_and_redial_keep_the_phone(
    simulator: Simulator, reference_phone: UssdPhone, sandbox: RunningSandbox
) -> None:
    person = sandbox.population.sample(1, programme="PKH")[0]
    page = await simulator.open()
    state = page.get_by_test_id("session-state")
    await expect(state).to_have_attribute("data-state", "idle")
    await expect(state).to_have_text("siaga")

    await dial(page)
    await expect(state).to_have_text("CON")
    consent = await screen_text(page)
    assert consent == (await reference_phone.dial())[4:]
    assert re.search(r"^1 ", consent, re.MULTILINE) and re.search(r"^2 ", consent, re.MULTILINE)

    # The keypad types into the reply box; Send is off until there is something to send.
    await expect(page.get_by_test_id("send-button")).to_be_disabled()
    await page.get_by_role("button", name="1", exact=True).click()
    await expect(page.get_by_test_id("reply-input")).to_have_value("1")
    async with page.expect_response(is_ussd):
        await page.get_by_test_id("send-button").click()
    await settled(page)
    await expect(state).to_have_text("CON")
    asked_nik = await screen_text(page)
    assert "NIK" in asked_nik
    assert asked_nik == (await reference_phone.answer("1"))[4:]

    await reply(page, person.nik)
    await expect(state).to_have_text("CON")
    asked_name = await screen_text(page)
    assert asked_name != asked_nik
    assert asked_name == (await reference_phone.answer(person.nik))[4:]

    await reply(page, person.name, with_enter=True)  # a name with spaces, sent with Enter
    await expect(state).to_have_text("END")
    result = await screen_text(page)
    assert re.search(r"aktif|active|desil|decile", result, re.IGNORECASE), result
    assert person.nik not in result and person.name not in result
    await expect(page.get_by_test_id("reply-input")).to_be_hidden()
    await page.screenshot(path="/tmp/simulator.png", full_page=True)

    # A new dial is a new session from the same phone: consent was given, so the menu.
    await dial(page)
    await expect(state).to_have_text("CON")
    menu = await screen_text(page)
    await reference_phone.dial()
    assert menu == (await reference_phone.dial())[4:]  # the reference, too, agreed above
    assert menu != consent
    await expect(page.get_by_test_id("reply-input")).to_have_value("")

    forms = simulator.ussd_forms()
    assert [form["text"] for form in forms] == [
        "",
        "1",
        f"1*{person.nik}",
        f"1*{person.nik}*{person.name}",
        "",
    ]
    assert {form["serviceCode"] for form in forms} == {"*123*7#"}
    phones = {form["phoneNumber"] for form in forms}
    assert len(phones) == 1 and re.fullmatch(r"\+62800\d{7}", phones.pop())
    assert await page.get_by_test_id("phone-number").inner_text() == forms[0]["phoneNumber"]
    sessions = [form["sessionId"] for form in forms]
    assert len(set(sessions[:4])) == 1 and sessions[4] != sessions[0]
    assert all(re.fullmatch(r"SIM-[0-9a-f]+", session) for session in sessions)


async def test_page_is_self_contained_and_clean(simulator: Simulator) -> None:
    page = await simulator.open()
    await dial(page)
    await expect(page.get_by_test_id("session-state")).to_have_text("CON")
    await expect(page.get_by_test_id("screen")).to_have_attribute("aria-live", "polite")

    server = urlsplit(simulator.url("/"))
    foreign = [
        request.url
        for request in simulator.requests
        if urlsplit(request.url).scheme not in {"data", "blob", "about"}
        and urlsplit(request.url).netloc != server.netloc
    ]
    assert foreign == []
    assert simulator.console_errors == []
    # Usable on a 360px-wide phone: nothing scrolls sideways.
    assert await page.evaluate("document.documentElement.scrollWidth") <= MOBILE["width"]
    for test_id in ("reply-input", "dial-button", "send-button"):
        assert await page.get_by_test_id(test_id).count() == 1


# The server's answer is replaced by a 502 here: one database is enough.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sending_then_failure_shows_an_indonesian_error_and_dials_again(
    simulator: Simulator,
) -> None:
    page = await simulator.open()
    await dial(page)
    state = page.get_by_test_id("session-state")
    await expect(state).to_have_text("CON")

    released = asyncio.Event()

    async def bad_gateway_when_released(route: Route) -> None:
        await released.wait()
        await route.fulfill(status=502, body="bad gateway")

    await page.route("**/ussd", bad_gateway_when_released)
    await page.get_by_test_id("reply-input").fill("1")
    await page.get_by_test_id("send-button").click()
    await expect(page.locator("#sending")).to_be_visible()
    await expect(page.get_by_test_id("send-button")).to_be_disabled()
    released.set()

    await expect(state).to_have_attribute("data-state", "error")
    await expect(state).to_have_text("gagal")
    screen = page.get_by_test_id("screen")
    await expect(screen).to_have_text("Gagal terhubung. Coba lagi.")
    await expect(page.locator("#sending")).to_be_hidden()
    await expect(page.get_by_test_id("dial-button")).to_be_enabled()

    await page.unroute("**/ussd")
    await dial(page)
    await expect(state).to_have_text("CON")
    await expect(page.get_by_test_id("dial-button")).to_be_hidden()  # mid-session

    await page.get_by_role("button", name="Batal", exact=True).click()  # hangs up locally
    await expect(state).to_have_attribute("data-state", "idle")
    await expect(screen).to_have_text("Sesi dibatalkan.")
    await expect(page.get_by_test_id("reply-input")).to_be_hidden()
    await expect(page.get_by_test_id("dial-button")).to_be_enabled()


# What a person reads on the page in each language: none of it may leak into the other.
ENGLISH_LABELS = {"Dial", "Send", "Cancel", "Your reply", "Service code", "New number", "Keypad"}
INDONESIAN_LABELS = {"Panggil", "Kirim", "Batal", "Jawaban Anda", "Kode layanan", "Nomor baru"}


async def fetch_page(
    simulator: Simulator, path: str, headers: dict[str, str] | None = None
) -> tuple[aiohttp.ClientResponse, PageReader]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(simulator.url(path), headers=headers or {}) as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/html" and response.charset == "utf-8"
        return response, read_page(await response.text())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", ["/", "/simulator"])
async def test_page_is_indonesian_by_default_without_english_labels(
    simulator: Simulator, path: str
) -> None:
    response, page = await fetch_page(simulator, path)
    assert page.html_lang == "id" and response.headers["Content-Language"] == "id"
    assert "Accept-Language" in response.headers["Vary"]
    words = page.words()
    assert words >= INDONESIAN_LABELS
    assert words & ENGLISH_LABELS == set()
    texts = json.loads(page.scripts["texts"])
    assert texts["failed"] == "Gagal terhubung. Coba lagi."
    assert texts["cancelled"] == "Sesi dibatalkan."
    # The only English is the way to the English page, named in its own language.
    assert "English" in words and "Bahasa Indonesia" not in words


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/simulator?lang=en", {}),
        ("/simulator", {"Accept-Language": "en-US"}),
        ("/?lang=en", {"Accept-Language": "id-ID,id;q=0.9"}),  # the link beats the browser
        ("/simulator", {"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.8"}),
    ],
)
async def test_english_is_served_on_request(
    simulator: Simulator, path: str, headers: dict[str, str]
) -> None:
    response, page = await fetch_page(simulator, path, headers)
    assert page.html_lang == "en" and response.headers["Content-Language"] == "en"
    words = page.words()
    assert words >= ENGLISH_LABELS
    assert words & INDONESIAN_LABELS == set()
    assert json.loads(page.scripts["texts"])["failed"] == "Connection failed. Try again."
    assert "Bahasa Indonesia" in words and "English" not in words


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
async def test_the_page_offers_every_language_each_in_its_own_name(
    simulator: Simulator, language: str
) -> None:
    response, page = await fetch_page(simulator, f"/simulator?lang={language}")
    assert page.html_lang == language and response.headers["Content-Language"] == language
    words = page.words()
    others = {LANGUAGE_NAMES[code] for code in SUPPORTED_LANGUAGES if code != language}
    assert len(others) == 3 and others <= words and LANGUAGE_NAMES[language] not in words
    t = translator(language)
    assert {t.gettext(PAGE_TEXTS[key]) for key in ("dial", "send", "cancel")} <= words
    if language != "en":  # every other page is translated, not English underneath
        assert words & ENGLISH_LABELS == set()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_indonesian_link_overrides_an_english_browser(simulator: Simulator) -> None:
    _, page = await fetch_page(simulator, "/simulator?lang=id", {"Accept-Language": "en-US"})
    assert page.html_lang == "id" and page.words() >= INDONESIAN_LABELS


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_language_switch_keeps_the_phone_number(simulator: Simulator) -> None:
    page = await simulator.open()
    await expect(page.locator("html")).to_have_attribute("lang", "id")
    await expect(page.get_by_test_id("dial-button")).to_have_text("Panggil")
    number = await page.get_by_test_id("phone-number").inner_text()
    assert re.fullmatch(r"\+62800\d{7}", number)

    await page.get_by_role("link", name="English", exact=True).click()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    assert urlsplit(page.url).query == "lang=en"
    await expect(page.get_by_test_id("dial-button")).to_have_text("Dial")
    await expect(page.get_by_test_id("session-state")).to_have_text("idle")
    await expect(page.get_by_test_id("phone-number")).to_have_text(number)

    # The English page works the same, with English words from the script too.
    await dial(page)
    await expect(page.get_by_test_id("session-state")).to_have_text("CON")
    await page.get_by_role("button", name="Cancel", exact=True).click()
    await expect(page.get_by_test_id("screen")).to_have_text("Session cancelled.")
    await page.screenshot(path="/tmp/simulator-en.png", full_page=True)

    await page.get_by_role("link", name="Bahasa Indonesia", exact=True).click()
    await expect(page.locator("html")).to_have_attribute("lang", "id")
    await expect(page.get_by_test_id("phone-number")).to_have_text(number)
    await page.get_by_role("button", name="Nomor baru").click()
    renewed = await page.get_by_test_id("phone-number").inner_text()
    assert renewed != number
    await expect(page.get_by_test_id("screen")).to_have_text(f"Nomor baru: {renewed}")
    await page.screenshot(path="/tmp/simulator-id.png", full_page=True)
    assert simulator.console_errors == []
