"""The command lists Telegram shows beside the text box: the citizens' for every private
chat, per app language; and, in a chat linked to a PKH facilitator, theirs, set for that
chat alone in the language the chat chose, and removed when the link ends."""

from __future__ import annotations

import logging

from telegram import Bot, BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat
from telegram.error import TelegramError
from telegram.ext import Application

from bot.dialogs.model import CommandMenu
from bot.i18n import DEFAULT_LANGUAGE, N_, SUPPORTED_LANGUAGES, translator

log = logging.getLogger(__name__)

Menu = tuple[tuple[str, str], ...]  # (command, description)

COMMAND_MENUS: dict[str, Menu] = {
    "id": (
        ("cek", N_("Check social-aid status by NIK")),
        ("usul", N_("Propose a household for social aid")),
        ("sanggah", N_("Object to a status or a recipient")),
        ("perbaiki", N_("Correct household data")),
        ("tiket", N_("Follow your tickets")),
        ("langganan", N_("Get a message when a household's aid changes")),
        ("berhenti", N_("Stop change notices")),
        ("bahasa", N_("Change the language")),
        ("bantuan", N_("How this service works")),
        ("privasi", N_("Your data and your consent")),
        ("data_saya", N_("See what we hold about you")),
        ("hapus_data", N_("Erase your data")),
        ("batal", N_("Stop and go back to the menu")),
    ),
    "en": (
        ("check", N_("Check social-aid status by NIK")),
        ("propose", N_("Propose a household for social aid")),
        ("object", N_("Object to a status or a recipient")),
        ("correct", N_("Correct household data")),
        ("tickets", N_("Follow your tickets")),
        ("subscribe", N_("Get a message when a household's aid changes")),
        ("unsubscribe", N_("Stop change notices")),
        ("language", N_("Change the language")),
        ("help", N_("How this service works")),
        ("privacy", N_("Your data and your consent")),
        ("my_data", N_("See what we hold about you")),
        ("erase", N_("Erase your data")),
        ("cancel", N_("Stop and go back to the menu")),
    ),
}
# Javanese and Sundanese speakers use the Indonesian command names, as posters print them.
COMMAND_MENUS["jv"] = COMMAND_MENUS["su"] = COMMAND_MENUS["id"]

# A facilitator acts for households: their list comes first, their own data does not
# (erasure is refused while the chat is linked). Worded as their menu's buttons are.
FACILITATOR_COMMAND_MENUS: dict[str, Menu] = {
    "id": (
        ("cek", N_("Check a household")),
        ("dampingan", N_("My households")),
        ("usul", N_("Propose a household")),
        ("sanggah", N_("Object (sanggah)")),
        ("perbaiki", N_("Correct household data")),
        ("tiket", N_("Tickets filed")),
        ("langganan", N_("Get a message when a household's aid changes")),
        ("berhenti", N_("Stop change notices")),
        ("bahasa", N_("Change the language")),
        ("bantuan", N_("How this service works")),
        ("batal", N_("Stop and go back to the menu")),
    ),
    "en": (
        ("check", N_("Check a household")),
        ("households", N_("My households")),
        ("propose", N_("Propose a household")),
        ("object", N_("Object (sanggah)")),
        ("correct", N_("Correct household data")),
        ("tickets", N_("Tickets filed")),
        ("subscribe", N_("Get a message when a household's aid changes")),
        ("unsubscribe", N_("Stop change notices")),
        ("language", N_("Change the language")),
        ("help", N_("How this service works")),
        ("cancel", N_("Stop and go back to the menu")),
    ),
}
FACILITATOR_COMMAND_MENUS["jv"] = FACILITATOR_COMMAND_MENUS["id"]
FACILITATOR_COMMAND_MENUS["su"] = FACILITATOR_COMMAND_MENUS["id"]


def bot_commands(menu: Menu, language: str) -> list[BotCommand]:
    t = translator(language)
    return [BotCommand(name, t.gettext(text)) for name, text in menu]


async def register_commands(application: Application) -> None:  # type: ignore[type-arg]
    """setMyCommands once per language; Indonesian is also the default for everyone else."""
    scope = BotCommandScopeAllPrivateChats()
    for language in SUPPORTED_LANGUAGES:
        commands = bot_commands(COMMAND_MENUS[language], language)
        code = None if language == DEFAULT_LANGUAGE else language
        await application.bot.set_my_commands(commands, scope=scope, language_code=code)


async def show_command_menu(bot: Bot, chat_id: int, menu: CommandMenu, language: str) -> None:
    """Give one chat its menu. A failure costs only the menu's look: it is logged, and the
    reply has gone out already."""
    scope = BotCommandScopeChat(chat_id)
    try:
        if menu is CommandMenu.FACILITATOR:
            commands = bot_commands(FACILITATOR_COMMAND_MENUS[language], language)
            await bot.set_my_commands(commands, scope=scope)
        else:  # the chat falls back to the citizens' list for its app's language
            await bot.delete_my_commands(scope=scope)
    except TelegramError as error:
        log.warning("could not change a chat's command menu: %s", type(error).__name__)
