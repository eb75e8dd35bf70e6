"""Telegram's command lists: every command listed is one the dialogs know, in every
language, with a translated description Telegram accepts."""

from __future__ import annotations

import re

import pytest

from bot.dialogs.router import COMMANDS
from bot.i18n import SUPPORTED_LANGUAGES
from handlers.telegram_commands import COMMAND_MENUS, FACILITATOR_COMMAND_MENUS, bot_commands

# Telegram: 1-32 characters of a-z, 0-9 and _; a description of 1-256 characters.
COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
MENUS = {"citizens": COMMAND_MENUS, "facilitators": FACILITATOR_COMMAND_MENUS}


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
@pytest.mark.parametrize("whose", MENUS)
def test_every_listed_command_is_answered_and_described_in_the_language(
    whose: str, language: str
) -> None:
    menu = MENUS[whose][language]
    commands = bot_commands(menu, language)
    assert [c.command for c in commands] == [name for name, _ in menu]
    for command in commands:
        assert COMMAND_NAME.fullmatch(command.command)
        assert command.command in COMMANDS  # the router knows it
        assert 1 <= len(command.description) <= 256
    if language != "en":  # written in the language, not left in the source's English
        english = {c.description for c in bot_commands(menu, "en")}
        assert not english & {c.description for c in commands}


def test_the_facilitators_list_has_their_households_and_not_erasure() -> None:
    for language in SUPPORTED_LANGUAGES:
        routed = {COMMANDS[name] for name, _ in FACILITATOR_COMMAND_MENUS[language]}
        assert "households" in routed and "erase" not in routed
        citizens = {COMMANDS[name] for name, _ in COMMAND_MENUS[language]}
        assert "households" not in citizens and "erase" in citizens
