"""Choosing the language of the conversation; the choice outlives the conversation."""

from __future__ import annotations

from dataclasses import replace

from bot.dialogs.model import (
    Choice,
    DialogState,
    Expect,
    Input,
    InputKind,
    Notice,
    Reply,
    Transition,
)
from bot.i18n import LANGUAGE_NAMES, SUPPORTED_LANGUAGES, Translator, translator


def language_prompt(state: DialogState, t: Translator) -> Reply:
    return Reply(
        text=t.gettext("Choose a language:"),
        choices=tuple(Choice(code, LANGUAGE_NAMES[code]) for code in SUPPORTED_LANGUAGES),
        expects=Expect.CHOICE,
    )


def handle_language(state: DialogState, inp: Input, t: Translator) -> Transition | None:
    if inp.kind is not InputKind.CHOICE or inp.value not in SUPPORTED_LANGUAGES:
        return None
    chosen = translator(inp.value)
    moved = replace(state, language=chosen.language).back_from_detour()
    # The confirmation is already in the new language.
    return Transition(moved, notice=Notice(chosen.gettext("Language: English.")))
