"""python-telegram-bot's requests sent over aiohttp instead of httpx.

PTB lets the HTTP client be replaced (`BaseRequest`). Its default, httpx, costs 3 to 6 ms
of CPU per Bot API call on this kind of machine, more than the whole dialog step behind a
reply; aiohttp, already the web server's and the registry client's library, costs under
one. Requests, answers and errors are what PTB expects from any backend: PTB still builds
every call and reads every answer.
"""

from __future__ import annotations

import json

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

DEFAULT_TIMEOUT_S = 5.0
_JSON = {"Content-Type": "application/json"}
# Connections kept to the Bot API: replies to many chats go out at once.
DEFAULT_POOL_SIZE = 64


class AiohttpRequest(BaseRequest):
    """One aiohttp session per instance, made in `initialize` (inside the running loop)."""

    def __init__(
        self,
        *,
        connection_pool_size: int = DEFAULT_POOL_SIZE,
        read_timeout: float | None = DEFAULT_TIMEOUT_S,
        connect_timeout: float | None = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self.USER_AGENT}
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: float | object | None = BaseRequest.DEFAULT_NONE,
        write_timeout: float | object | None = BaseRequest.DEFAULT_NONE,
        connect_timeout: float | object | None = BaseRequest.DEFAULT_NONE,
        pool_timeout: float | object | None = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        # The read timeout PTB passes already includes a long poll's own wait.
        timeout = aiohttp.ClientTimeout(
            sock_connect=_seconds(connect_timeout, self._connect_timeout),
            sock_read=_seconds(read_timeout, self._read_timeout),
        )
        body: aiohttp.FormData | bytes | None = None
        headers = None
        if request_data is not None and request_data.contains_files:
            body = _multipart(request_data)
        elif request_data is not None:
            # One JSON body (the Bot API takes application/json): percent-encoding each
            # JSON-encoded field of a form costs more than the rest of the call.
            body = json.dumps(request_data.parameters).encode()
            headers = _JSON
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, timeout=timeout
            ) as answer:
                return answer.status, await answer.read()
        except TimeoutError as error:
            raise TimedOut from error
        except aiohttp.ClientError as error:
            # The class only: aiohttp's message may hold the URL, and the URL the token.
            raise NetworkError(f"aiohttp.{type(error).__name__}") from error


def _seconds(given: float | object | None, default: float | None) -> float | None:
    """PTB's "not given" marker means this request's default."""
    if isinstance(given, (int, float)) or given is None:
        return None if given is None else float(given)
    return default


def _multipart(request_data: RequestData) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mime_type) in request_data.multipart_data.items():
        form.add_field(name, content, filename=filename, content_type=mime_type)
    return form
