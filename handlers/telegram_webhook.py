"""Telegram's webhook: `POST /telegram/webhook` on the web server takes each update
Telegram sends and puts it on the bot's update queue, where it is handled as a polled one
would be (handlers/telegram.py). It answers at once; the reply goes out as a message.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.ext import Application

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_TOKEN_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# An update holds text and references to files, never a file: far below this.
MAX_UPDATE_BYTES = 1024 * 1024


def webhook_url(public_url: str) -> str:
    """Where Telegram is asked to send updates, for the service reached at `public_url`."""
    return public_url.rstrip("/") + WEBHOOK_PATH


class TelegramWebhook:
    """Hands what Telegram POSTs to `application`, which was built without an Updater.

    403 without the secret (compared in constant time, before the body is read); 413 over
    `MAX_UPDATE_BYTES`; 400 for anything that is not an update; 503 while the application
    is not running (starting, or stopping), so that Telegram sends it again later."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        secret_token: str,
    ) -> None:
        self._application = application
        self._secret = secret_token.encode("ascii")

    async def receive(self, request: web.Request) -> web.Response:
        sent = request.headers.get(SECRET_TOKEN_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(sent, self._secret):
            log.info("telegram webhook: refused a call without the secret")
            return web.Response(status=403, text="forbidden")
        body = await _body_within(request, MAX_UPDATE_BYTES)
        if body is None:
            log.info("telegram webhook: refused a body over %d bytes", MAX_UPDATE_BYTES)
            return web.Response(status=413, text="too large")
        update = self._update_from(body)
        if update is None:
            # Never the body itself: it may hold a NIK.
            log.info("telegram webhook: refused a body that is not an update")
            return web.Response(status=400, text="not an update")
        # No await from here on: what is queued while running is handled before stop ends.
        if not self._application.running:
            return web.Response(status=503, text="not ready")
        self._application.update_queue.put_nowait(update)
        return web.Response(text="ok")

    def _update_from(self, body: bytes) -> Update | None:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return None
        if not isinstance(data, dict):
            return None
        update_id = data.get("update_id")
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            return None
        try:
            return Update.de_json(data, self._application.bot)
        except Exception:  # a missing or mistyped field fails in many ways; all are a 400
            return None


async def _body_within(request: web.Request, limit: int) -> bytes | None:
    """The body, or None once it exceeds `limit` bytes (the app's own cap is for USSD)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
