"""python-telegram-bot over aiohttp (handlers/telegram_http.py) as PTB expects of any
backend: files go up as multipart and come back intact, no answer is NetworkError, a slow
one is TimedOut."""

from __future__ import annotations

import asyncio

import pytest
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from handlers.telegram_http import AiohttpRequest
from tests.support.fake_telegram import DEFAULT_TOKEN, running_fake_telegram
from tests.test_cli import free_port

CHAT = 4242


def _bot(api_url: str, request: AiohttpRequest) -> Bot:
    return Bot(
        DEFAULT_TOKEN,
        base_url=f"{api_url}/bot",
        base_file_url=f"{api_url}/file/bot",
        request=request,
        get_updates_request=AiohttpRequest(connection_pool_size=1),
    )


async def test_a_file_goes_up_as_multipart_and_comes_back_intact() -> None:
    content = bytes(range(256)) * 64
    async with running_fake_telegram() as fake:
        fake.add_user(CHAT)
        async with _bot(fake.api_url, AiohttpRequest()) as bot:
            sent = await bot.send_document(CHAT, content, filename="bukti.bin", caption="ok")
            assert sent.document is not None and sent.caption == "ok"
            assert fake.file_content(sent.document.file_id) == content
            assert await (await bot.get_file(sent.document.file_id)).download_as_bytearray() == (
                bytearray(content)
            )


async def test_no_answer_is_a_network_error() -> None:
    request = AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(NetworkError):
            await request.post(f"http://127.0.0.1:{free_port()}/bot{DEFAULT_TOKEN}/getMe")
    finally:
        await request.shutdown()


async def test_a_slow_answer_is_timed_out() -> None:
    async def hang(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        request = AiohttpRequest(read_timeout=0.3)
        await request.initialize()
        try:
            with pytest.raises(TimedOut):
                await request.post(f"http://127.0.0.1:{port}/bot{DEFAULT_TOKEN}/getMe")
        finally:
            await request.shutdown()
    finally:
        server.close()
