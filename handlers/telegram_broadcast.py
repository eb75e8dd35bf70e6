"""Quarterly notices to many chats: `sendMessage` posted straight to the Bot API over one
aiohttp session.

python-telegram-bot's HTTP client costs several milliseconds of CPU per request, too much
for a paid broadcast of 1,000 messages a second on a small machine; this port costs well
under one. It maps Telegram's answers as TelegramOutbound maps PTB's exceptions.
"""

from __future__ import annotations

import json
import logging

import aiohttp

from bot.dialogs.model import Reply
from bot.outbound import Delivery, DeliveryResult
from handlers.telegram import keyboard_for

log = logging.getLogger(__name__)

FORBIDDEN, BAD_REQUEST, TOO_MANY_REQUESTS = 403, 400, 429


class BotApiBroadcast:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_base: str,
        token: str,
        *,
        paid_broadcast: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        self._session = session
        self._url = f"{api_base}{token}/sendMessage"
        self._paid = paid_broadcast
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def deliver(self, address: str, reply: Reply) -> DeliveryResult:
        form = {"chat_id": address, "text": reply.text}
        markup = keyboard_for(reply)
        if markup is not None:
            form["reply_markup"] = json.dumps(markup.to_dict())
        if self._paid:
            form["allow_paid_broadcast"] = "true"
        try:
            async with self._session.post(self._url, data=form, timeout=self._timeout) as answer:
                document = json.loads(await answer.read())
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return DeliveryResult(Delivery.RETRY)
        if not isinstance(document, dict):
            return DeliveryResult(Delivery.RETRY)
        if document.get("ok") is True:
            return DeliveryResult(Delivery.SENT)
        return _refusal(document)


def _refusal(document: dict[str, object]) -> DeliveryResult:
    code = document.get("error_code")
    description = str(document.get("description", "")).lower()
    if code == FORBIDDEN or (code == BAD_REQUEST and "chat not found" in description):
        return DeliveryResult(Delivery.GONE)  # blocked, or the chat is gone
    if code == TOO_MANY_REQUESTS:
        parameters = document.get("parameters")
        wait = parameters.get("retry_after", 1) if isinstance(parameters, dict) else 1
        return DeliveryResult(Delivery.RETRY, retry_after=float(wait))
    if code == BAD_REQUEST:
        # Refused as written: the run gives up on it after its attempts, the subscriber
        # stays. Say so loudly: it is ours to fix.
        log.error("Telegram refused a notice (HTTP 400)")
    return DeliveryResult(Delivery.RETRY)
