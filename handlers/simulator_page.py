"""Renders the USSD simulator page in one language: its HTML template filled with gettext text.

The template is handlers/static/simulator.html, a `string.Template`: `$name` is filled here
and a literal dollar sign is written `$$`. Text for the HTML is escaped with `html.escape`;
text the page's script needs travels as one JSON object in
`<script type="application/json" id="texts">`, so no string is ever pasted into JS source.
"""

from __future__ import annotations

import functools
import html
import json
from collections.abc import Callable, Mapping
from importlib import resources
from string import Template
from typing import Final

from bot.i18n import (
    LANGUAGE_NAMES,
    N_,
    SUPPORTED_LANGUAGES,
    normalize_language,
    translator,
)

# Text shown in the HTML (element text, labels, aria-labels), by template placeholder.
PAGE_TEXTS: Final[Mapping[str, str]] = {
    "title": N_("USSD simulator — DTSEN social-aid check"),
    "heading": N_("USSD simulator"),
    "intro": N_("Check DTSEN social-aid status on an ordinary phone screen."),
    "language_label": N_("Language"),
    "phone_label": N_("Simulated phone"),
    "state_label": N_("Session state:"),
    "state_idle": N_("idle"),
    "sending": N_("Sending…"),
    "screen_heading": N_("USSD screen"),
    "welcome": N_("Type the service code, then press Dial."),
    "reply_label": N_("Your reply"),
    "send": N_("Send"),
    "cancel": N_("Cancel"),
    "session_ended": N_("Session ended."),
    "dial_again": N_("Done — dial again"),
    "service_code_label": N_("Service code"),
    "dial": N_("Dial"),
    "keypad_label": N_("Keypad"),
    "delete_label": N_("Delete one character"),
    "delete": N_("Delete"),
    "number_label": N_("Simulated number:"),
    "new_number": N_("New number"),
    "note": N_("USSD simulator — no phone, no token. Sample data from the sandbox registry."),
}

# Text the page's script shows, by key of the JSON object; {name} is filled in by the script.
SCRIPT_TEXTS: Final[Mapping[str, str]] = {
    "failed": N_("Connection failed. Try again."),
    "invalid_code": N_("Invalid service code, e.g. *123*7#"),
    "calling": N_("Calling {code}…"),
    "cancelled": N_("Session cancelled."),
    "new_number": N_("New number: {number}"),
    # Session state badges; CON and END are the gateway's own words and stay as they are.
    "state_idle": N_("idle"),
    "state_error": N_("error"),
}

# Placeholders filled with something other than translated text.
OTHER_PLACEHOLDERS: Final = frozenset({"lang", "language_links", "texts_json"})


def render_simulator_page(language: str) -> str:
    """The simulator page in `language` (an unsupported one gets the default, Indonesian)."""
    t = translator(normalize_language(language))
    return render_template(page_template(), t.gettext, t.language)


def render_template(template: Template, gettext: Callable[[str], str], language: str) -> str:
    """Fill `template` with text from `gettext`; `language` is the page's own language tag."""
    values = {key: html.escape(gettext(message)) for key, message in PAGE_TEXTS.items()}
    values["lang"] = html.escape(language)
    values["language_links"] = language_links(language)
    values["texts_json"] = script_json(
        {key: gettext(message) for key, message in SCRIPT_TEXTS.items()}
    )
    return template.substitute(values)


def language_links(language: str) -> str:
    """A link to the page in every other language we serve, each named in its own."""
    return "\n    ".join(
        f'<a href="?lang={code}" hreflang="{code}" lang="{code}" '
        f'data-testid="language-{code}">{html.escape(LANGUAGE_NAMES[code])}</a>'
        for code in SUPPORTED_LANGUAGES
        if code != language
    )


def script_json(texts: Mapping[str, str]) -> str:
    """JSON safe inside a <script> element: no "<", ">" or "&" that could end or open a tag."""
    encoded = json.dumps(dict(texts), ensure_ascii=False, sort_keys=True)
    return encoded.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def page_language(requested: str | None, accept_language: str | None) -> str:
    """The page's language: `?lang=` if it names one we serve, else the browser's first
    supported choice in Accept-Language, else Indonesian."""
    if requested and _primary(requested) in SUPPORTED_LANGUAGES:
        return normalize_language(requested)
    for tag in _accepted_languages(accept_language or ""):
        if _primary(tag) in SUPPORTED_LANGUAGES:
            return normalize_language(tag)
    return normalize_language(None)


def _primary(tag: str) -> str:
    return tag.strip().replace("_", "-").split("-", 1)[0].lower()


def _accepted_languages(header: str) -> list[str]:
    """Language tags of an Accept-Language header, most preferred first; q=0 ones dropped."""
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        tag, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]


@functools.cache
def page_template() -> Template:
    # Package data, read once like the catalogs.
    source = resources.files("handlers").joinpath("static", "simulator.html")
    return Template(source.read_text(encoding="utf-8"))
