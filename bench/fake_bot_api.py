#!/usr/bin/env python
"""A minimal, fast fake Telegram Bot API for bench/load.py, in its own process.

It answers what a `bansos-bot serve` in webhook mode calls (getMe, setMyCommands,
setWebhook, getWebhookInfo with the URL last set and no delivery error, sendMessage; any
other method gets `true`) with valid Bot API JSON, and records when each chat's first
message arrived (`time.time()`), so the load generator can compute end-to-end latency:
update sent → its reply reached "Telegram".

tests/support/fake_telegram.py is the full fake (HTML parsing, chats, updates, checks);
this one does the least per call, so that at hundreds of messages a second it is not the
bottleneck.

    python bench/fake_bot_api.py --port N

    GET  /bench/stats     {"calls": {method: n}, "messages": n, "chats": chats replied to}
    POST /bench/replies   → {"first": {chat_id: t}, "count": {chat_id: n}}, then forgets them
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BOT_ID = 123456
TOKEN = "123456:ABCdefGhIjKlmNoPqRsTuVwXyZ_bench-token0"
BOT_USER = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "Bansos Bench",
    "username": "bansos_bench_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


def create_app() -> Any:
    from aiohttp import web

    calls: Counter[str] = Counter()
    first: dict[str, float] = {}
    count: Counter[str] = Counter()
    message_ids = itertools.count(1)
    webhook = {"url": ""}

    def ok(result: Any) -> web.Response:
        return web.Response(
            body=json.dumps({"ok": True, "result": result}).encode(),
            content_type="application/json",
        )

    async def method(request: web.Request) -> web.Response:
        now = time.time()
        name = request.match_info["method"]
        calls[name] += 1
        if name == "getMe":
            return ok(BOT_USER)
        if name not in ("sendMessage", "setWebhook", "deleteWebhook", "getWebhookInfo"):
            return ok(True)
        if request.content_type == "application/json":
            params = await request.json()
        else:
            params = dict(await request.post())
        if name == "setWebhook":
            webhook["url"] = str(params.get("url", ""))
            return ok(True)
        if name == "deleteWebhook":
            webhook["url"] = ""
            return ok(True)
        if name == "getWebhookInfo":
            info = {"url": webhook["url"], "has_custom_certificate": False}
            return ok({**info, "pending_update_count": 0, "max_connections": 40})
        chat = str(params.get("chat_id"))
        count[chat] += 1
        first.setdefault(chat, now)
        chat_id = int(chat) if chat.lstrip("-").isdigit() else chat
        return ok(
            {
                "message_id": next(message_ids),
                "date": int(now),
                "chat": {"id": chat_id, "type": "private"},
                "from": {k: BOT_USER[k] for k in ("id", "is_bot", "first_name", "username")},
                "text": str(params.get("text", "")),
            }
        )

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(
            {"calls": dict(calls), "messages": sum(count.values()), "chats": len(first)}
        )

    async def replies(_request: web.Request) -> web.Response:
        answer = {"first": dict(first), "count": dict(count)}
        first.clear()
        count.clear()
        return web.json_response(answer)

    async def alive(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", method)
    app.router.add_get("/bot{token}/{method}", method)
    app.router.add_get("/bench/stats", stats)
    app.router.add_post("/bench/replies", replies)
    app.router.add_get("/healthz", alive)
    return app


async def _serve(port: int) -> None:
    import asyncio
    import signal

    from aiohttp import web

    runner = web.AppRunner(create_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args(argv)
    from bot import event_loop

    event_loop.run(_serve(arguments.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
