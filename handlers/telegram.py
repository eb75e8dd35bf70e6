"""Telegram adapter: an Update becomes a dialog Input; a Reply becomes a message with
inline buttons. No flow logic lives here: python-telegram-bot receives, sends and retries.
`TelegramLink` keeps the connection: it starts it in the background while the Bot API
cannot be reached, so the rest of the service runs meanwhile. Updates arrive by long
polling, or in webhook mode through the web server (handlers/telegram_webhook.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import warnings
from collections.abc import Callable, Coroutine
from contextlib import nullcontext
from datetime import timedelta
from http import HTTPStatus
from typing import Any

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ChatType
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.warnings import PTBDeprecationWarning

from bot.dialog_engine import DialogEngine
from bot.dialogs.model import Attachment, Input, InputKind, Reply
from bot.filings import Location
from bot.health import TelegramStatus
from bot.i18n import DEFAULT_LANGUAGE, translator
from bot.metrics import UpdateOutcome, observe_telegram_update
from bot.outbound import Delivery, DeliveryResult
from bot.photo_intake import FileTooLarge, FileUnavailable
from bot.request_context import request_id_bound
from handlers.telegram_commands import register_commands, show_command_menu
from handlers.telegram_http import AiohttpRequest
from handlers.telegram_ordering import ChatOrderedUpdateProcessor

log = logging.getLogger(__name__)

CHANNEL = "telegram"
ENGINE_KEY = "dialog_engine"
MAX_CONCURRENT_UPDATES = 64
# A person in a chat waits longer than a USSD gateway allows, but not for ever.
LOOKUP_BUDGET_S = 10.0
# Starting against an unreachable Bot API: wait 1, 2, 4 ... seconds, never more than 60.
START_RETRY_FIRST_S = 1.0
START_RETRY_MAX_S = 60.0
# The kinds of update the handlers below take; Telegram sends no others.
ALLOWED_UPDATES = (Update.MESSAGE, Update.CALLBACK_QUERY)
# Telegram's own default: how many webhook calls it makes at once.
WEBHOOK_MAX_CONNECTIONS = 40
# In webhook mode nothing polls, so Telegram is asked this often how delivery goes.
WEBHOOK_CHECK_S = 60.0


def build_telegram_application(
    token: str,
    engine: DialogEngine,
    *,
    api_base: str,
    file_api_base: str,
    link: TelegramLink | None = None,
    webhook: bool = False,
    messages_per_second: float = 30.0,
) -> Application:  # type: ignore[type-arg]
    """The bot; with `link`, every answer to (or failure of) the long poll is reported.
    With `webhook`, there is no long poll: the web server puts what Telegram sends on the
    application's update queue. Replies go out at most `messages_per_second` in all."""
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(api_base)
        .base_file_url(file_api_base)
        .concurrent_updates(ChatOrderedUpdateProcessor(MAX_CONCURRENT_UPDATES))
        # Within Telegram's limits (about 30 messages a second in all unless the bot pays
        # for more, 20 a minute per group); after a 429, all sending waits as asked, then
        # tries once more.
        .rate_limiter(AIORateLimiter(overall_max_rate=messages_per_second, max_retries=1))
        # aiohttp rather than PTB's default httpx: a tenth of the CPU per call.
        .request(AiohttpRequest())
    )
    if webhook:
        builder = builder.updater(None)
    elif link is not None:
        builder = builder.get_updates_request(_ReportingPollRequest(link))
    else:
        builder = builder.get_updates_request(AiohttpRequest(connection_pool_size=1))
    application = builder.build()
    application.bot_data[ENGINE_KEY] = engine
    # New messages only: an edited message must not replay an answer already given.
    new = filters.UpdateType.MESSAGE
    private = filters.ChatType.PRIVATE
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_handler(MessageHandler(new & private, on_message))
    application.add_handler(MessageHandler(new & ~private & filters.COMMAND, on_group_command))
    application.add_error_handler(on_error)
    return application


async def start_polling(
    application: Application,  # type: ignore[type-arg]
    *,
    poll_timeout: int = 10,
    on_polling_error: Callable[[TelegramError], None] | None = None,
) -> None:
    """Initialise, publish the command menus, and start receiving updates.

    Safe to call again after a failure part-way: each step skips what is done already.
    `on_polling_error` hears of each failed long poll once polling runs (PTB retries it).
    """
    await application.initialize()
    await register_commands(application)
    # Polling needs no webhook. Removed here, a failure reaches the caller; PTB's own
    # removal below retries quietly and only runs a moment after this one succeeded.
    await application.bot.delete_webhook()
    if not application.running:
        await application.start()
    assert application.updater is not None
    await application.updater.start_polling(
        poll_interval=0,
        timeout=poll_timeout,
        bootstrap_retries=-1,
        allowed_updates=ALLOWED_UPDATES,
        error_callback=on_polling_error,
    )


async def start_webhook(
    application: Application,  # type: ignore[type-arg]
    *,
    url: str,
    secret_token: str,
) -> None:
    """Initialise, start handling what the web server receives, publish the command menus,
    and ask Telegram to send updates to `url` with `secret_token`.

    Safe to call again after a failure part-way. The application runs before Telegram is
    told where to call, so no call finds it unready. Instances sharing a URL and a secret
    may all call this: each sets the same webhook. None removes it when it stops, since
    the others still receive through it."""
    await application.initialize()
    if not application.running:
        await application.start()
    await register_commands(application)
    await application.bot.set_webhook(
        url=url,
        secret_token=secret_token,
        allowed_updates=ALLOWED_UPDATES,
        max_connections=WEBHOOK_MAX_CONNECTIONS,
    )


async def stop_application(application: Application) -> None:  # type: ignore[type-arg]
    """Stop polling (if it polls), finish the updates in hand, release the connections;
    also after a start that never got through."""
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
    await application.shutdown()
    await application.bot.shutdown()  # a start that failed in getMe left its clients open


class TelegramLink:
    """The connection to the Bot API. `connect` starts polling (`connect_webhook` sets the
    webhook), trying again with growing pauses while Telegram cannot be reached; once
    polling, the long poll tells whether it still is. Each change between up and down is
    one log line and one report to `status`, never a traceback: an unreachable Telegram
    is an outage to report, not a bug."""

    def __init__(
        self,
        status: TelegramStatus,
        *,
        first_retry_s: float = START_RETRY_FIRST_S,
        max_retry_s: float = START_RETRY_MAX_S,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._status = status
        self._first_retry_s = first_retry_s
        self._max_retry_s = max_retry_s
        self._jitter = jitter
        self._up: bool | None = None  # None: not known yet

    async def connect(
        self,
        application: Application,  # type: ignore[type-arg]
        *,
        poll_timeout: int = 10,
    ) -> None:
        """Return once polling runs. A token Telegram refuses (InvalidToken) is raised:
        waiting does not mend it."""
        await self._keep_trying(
            lambda: start_polling(
                application, poll_timeout=poll_timeout, on_polling_error=self.went_down
            )
        )

    async def connect_webhook(
        self,
        application: Application,  # type: ignore[type-arg]
        *,
        url: str,
        secret_token: str,
    ) -> None:
        """Return once Telegram has taken the webhook; up from then on (nothing polls to
        tell otherwise). InvalidToken is raised, as by `connect`."""
        await self._keep_trying(
            lambda: start_webhook(application, url=url, secret_token=secret_token)
        )

    async def watch_webhook(
        self,
        application: Application,  # type: ignore[type-arg]
        *,
        url: str,
        secret_token: str,
        interval_s: float = WEBHOOK_CHECK_S,
    ) -> None:
        """Until cancelled, ask Telegram every `interval_s` how the webhook fares, since in
        webhook mode no long poll tells: unreachable is down; a delivery that failed since
        the last check is down too (Telegram cannot reach PUBLIC_URL, in its own words);
        a webhook removed or replaced (someone polled with this token) is set again."""
        while True:
            await asyncio.sleep(interval_s)
            checked_since = time.time() - interval_s
            try:
                info = await application.bot.get_webhook_info()
                if info.url != url:
                    log.warning("Telegram: the webhook was removed or replaced; setting it again")
                    await start_webhook(application, url=url, secret_token=secret_token)
                    self.came_up()
                    continue
            except TelegramError as problem:
                self.went_down(problem)
                continue
            failed = info.last_error_date
            # Telegram gives the time in whole seconds: a second's slack.
            if failed is not None and failed.timestamp() >= checked_since - 1.0:
                self.cannot_deliver(info.last_error_message or "no reason given")
            else:
                self.came_up()

    async def _keep_trying(self, start: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._status.set_down()  # not up until started; said in the log once known
        failures = 0
        while True:
            try:
                await start()
            except InvalidToken:
                raise
            except TelegramError as problem:
                pause = retry_delay(
                    failures, self._first_retry_s, self._max_retry_s, self._jitter()
                )
                failures += 1
                self.went_down(problem, retry_in=pause)
                await asyncio.sleep(pause)
            else:
                self.came_up()
                return

    def came_up(self) -> None:
        if self._up is not True:
            log.info("Telegram: up")
        self._up = True
        self._status.set_up()

    def went_down(self, problem: TelegramError, *, retry_in: float | None = None) -> None:
        if self._up is not False:
            again = "retrying" if retry_in is None else f"retrying in {retry_in:.0f} s"
            log.warning("Telegram: down (%s), %s", _kind_of(problem), again)
        else:
            log.debug("Telegram: still down (%s)", type(problem).__name__)
        self._up = False
        self._status.set_down()

    def cannot_deliver(self, reason: str) -> None:
        """Telegram answers, but cannot deliver updates to the webhook."""
        if self._up is not False:
            log.warning("Telegram: down (it cannot deliver to the webhook: %s)", reason)
        self._up = False
        self._status.set_down()


def _kind_of(problem: TelegramError) -> str:
    """The error's class; for a request Telegram refused, also its reason ("bad webhook:
    failed to resolve host"): Telegram's own words about our request, no one's data."""
    if isinstance(problem, BadRequest):
        return f"{type(problem).__name__}: {problem.message}"
    return type(problem).__name__


def retry_delay(failures: int, first_s: float, max_s: float, jitter: float) -> float:
    """The pause after `failures` failures before this one: doubling from `first_s` up to
    `max_s`, less up to a fifth (`jitter` in [0, 1)) so that many restarted processes do
    not knock all at once."""
    pause = min(max_s, first_s * 2.0 ** min(failures, 32))
    return pause * (1.0 - 0.2 * jitter)


class _ReportingPollRequest(AiohttpRequest):
    """The long poll's connection (one, like PTB's own): an answer means Telegram is up,
    a failure to get one that it is down. Telegram's error answers (a 409 when another
    process polls, a 5xx) reach `TelegramLink.went_down` through PTB's error callback."""

    def __init__(self, link: TelegramLink) -> None:
        super().__init__(connection_pool_size=1)
        self._link = link

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        try:
            status, payload = await super().do_request(*args, **kwargs)
        except TelegramError as problem:  # NetworkError or TimedOut: no answer at all
            self._link.went_down(problem)
            raise
        if status == HTTPStatus.OK:
            self._link.came_up()
        return status, payload


def input_from_message(message: Message) -> Input:
    """What a message means to a dialog."""
    if message.text is not None:
        entity = message.entities[0] if message.entities else None
        if entity is not None and entity.type == "bot_command" and entity.offset == 0:
            command = message.text[1 : entity.length].split("@", 1)[0].lower()
            argument = message.text[entity.length :].strip()
            return Input(InputKind.COMMAND, command, argument=argument)
        return Input(InputKind.TEXT, message.text)
    if message.photo:
        largest = message.photo[-1]
        return Input(
            InputKind.PHOTO, attachment=Attachment(largest.file_id, largest.file_size, "image/jpeg")
        )
    if message.document is not None:
        document = message.document
        attachment = Attachment(document.file_id, document.file_size, document.mime_type)
        return Input(InputKind.FILE, attachment=attachment)
    if message.location is not None:
        where = Location(message.location.latitude, message.location.longitude)
        return Input(InputKind.LOCATION, location=where)
    return Input(InputKind.OTHER)


class TelegramFiles:
    """Fetches what a person sent through the Bot API (getFile, then the file URL)."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def fetch(self, attachment: Attachment, max_bytes: int) -> bytes:
        try:
            file = await self._bot.get_file(attachment.ref)
            if file.file_size is not None and file.file_size > max_bytes:
                raise FileTooLarge
            content = bytes(await file.download_as_bytearray())
        except BadRequest as problem:
            if "too big" in problem.message.lower():
                raise FileTooLarge from None
            raise FileUnavailable from problem
        except TelegramError as problem:
            raise FileUnavailable from problem
        if len(content) > max_bytes:
            raise FileTooLarge
        return content


class TelegramOutbound:
    """Sends messages nobody asked for just now (a ticket moved, a quarterly notice).

    With `paid_broadcast`, sends go out with `allow_paid_broadcast` (up to 1,000 per
    second, paid in Telegram Stars) instead of within the free 30 per second.
    """

    def __init__(self, bot: Bot, *, paid_broadcast: bool = False) -> None:
        self._bot = bot
        self._paid = paid_broadcast or None

    async def deliver(self, address: str, reply: Reply) -> DeliveryResult:
        try:
            await self._bot.send_message(
                int(address),
                reply.text,
                reply_markup=keyboard_for(reply),
                allow_paid_broadcast=self._paid,
            )
        except Forbidden:
            return DeliveryResult(Delivery.GONE)  # the person blocked the bot
        except RetryAfter as pause:
            return DeliveryResult(Delivery.RETRY, retry_after=_seconds(pause))
        except BadRequest as problem:
            if "chat not found" in problem.message.lower():
                return DeliveryResult(Delivery.GONE)
            raise
        except NetworkError:
            return DeliveryResult(Delivery.RETRY)
        return DeliveryResult(Delivery.SENT)


def keyboard_for(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.choices:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(choice.label, callback_data=choice.key)] for choice in reply.choices]
    )


UpdateHandler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]


def _request_id_of(update: Update) -> str:
    return f"tg-{update.update_id}"


def _traced(handle: UpdateHandler) -> UpdateHandler:
    """Tag the update's log lines with its id and end with one line: outcome and latency,
    never the chat id or the text (the engine, which holds the keys, hashes addresses)."""

    @functools.wraps(handle)
    async def traced(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        started = time.perf_counter()
        outcome: UpdateOutcome = "error"
        with request_id_bound(_request_id_of(update)):
            try:
                await handle(update, context)
                outcome = "ok"
            finally:
                seconds = time.perf_counter() - started
                observe_telegram_update(outcome, seconds)
                latency_ms = round(seconds * 1000, 1)
                log.info(
                    "telegram update done: %s in %.1f ms",
                    outcome,
                    latency_ms,
                    extra={"channel": CHANNEL, "outcome": outcome, "latency_ms": latency_ms},
                )

    return traced


def _app_language(update: Update) -> str | None:
    """The language of the person's Telegram app, for their first message."""
    user = update.effective_user
    return None if user is None else user.language_code


@_traced
async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    chat = update.effective_chat
    if message is None or chat is None:
        return
    reply = await _engine(context).handle(
        CHANNEL,
        str(chat.id),
        input_from_message(message),
        files=TelegramFiles(context.bot),
        lookup_budget_s=LOOKUP_BUDGET_S,
        language_hint=_app_language(update),
        message_id=message.message_id,
    )
    await _send(context.bot, chat.id, reply)


@_traced
async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    chat = update.effective_chat
    if query is None or chat is None or chat.type != ChatType.PRIVATE:
        return
    await query.answer()
    message = query.message
    chosen = _label_of(message, query.data) if isinstance(message, Message) else None
    if isinstance(message, Message) and message.text and chosen:
        # Keep the question readable but spent: show what was chosen, drop the buttons.
        # A second tap on the same message finds no buttons left and edits nothing.
        try:
            await query.edit_message_text(f"{message.text}\n\n» {chosen}", reply_markup=None)
        except BadRequest:
            log.info("could not mark a spent question; answering anyway")
    reply = await _engine(context).handle(
        CHANNEL,
        str(chat.id),
        Input(InputKind.CHOICE, query.data or ""),
        files=TelegramFiles(context.bot),
        lookup_budget_s=LOOKUP_BUDGET_S,
        language_hint=_app_language(update),
    )
    await _send(context.bot, chat.id, reply)


async def _send(bot: Bot, chat_id: int, reply: Reply) -> None:
    await bot.send_message(chat_id, reply.text, reply_markup=keyboard_for(reply))
    if reply.menu is not None:
        await show_command_menu(bot, chat_id, reply.menu, reply.language)


@_traced
async def on_group_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """NIKs must never be typed in a group: point people to a private chat instead."""
    message = update.effective_message
    if message is None:
        return
    t = translator(DEFAULT_LANGUAGE)
    await message.reply_text(
        t.gettext("To protect your data, talk to me in a private chat, not in a group.")
    )


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    # The update may hold a NIK: log the kind of failure, never the update itself.
    error = context.error
    # PTB calls this once the handler's binding has ended: bind the update's id again.
    with request_id_bound(_request_id_of(update)) if isinstance(update, Update) else nullcontext():
        log.error("handling a Telegram update failed: %s", type(error).__name__, exc_info=error)
    if isinstance(update, Update) and update.effective_chat is not None:
        t = translator(DEFAULT_LANGUAGE)
        try:
            await update.effective_chat.send_message(
                t.gettext("Something went wrong on our side. Please try again in a moment.")
            )
        except TelegramError:
            log.warning("could not tell the user about the failure")


def _engine(context: ContextTypes.DEFAULT_TYPE) -> DialogEngine:
    engine = context.bot_data[ENGINE_KEY]
    assert isinstance(engine, DialogEngine)
    return engine


def _label_of(message: Message, key: str | None) -> str | None:
    markup = message.reply_markup
    if markup is None:
        return None
    for row in markup.inline_keyboard:
        for button in row:
            if button.callback_data == key:
                return button.text
    return None


def _seconds(pause: RetryAfter) -> float:
    """RetryAfter's wait in seconds (an int today, a timedelta in PTB's next major)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        wait = pause.retry_after
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
