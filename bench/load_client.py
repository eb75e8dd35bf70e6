"""The load generator's HTTP client: HTTP/1.1 POSTs over kept-alive connections, nothing else.

bench/load.py shares two cores with the service it measures, so every millisecond the
generator spends is taken from the bot or PostgreSQL. aiohttp's client costs about 0.7 ms
of CPU per request; this one, an asyncio Protocol that writes one prepared request and
reads one Content-Length answer, a fraction of that. It speaks only to the aiohttp servers
of this project (they always send Content-Length), one request at a time per connection,
a connection per request in flight, idle ones reused.

Errors: OSError (refused, reset, closed before the whole answer) as ConnectionError or
OSError, TimeoutError after `timeout_s`.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None
        self.closed = False
        self._buffer = bytearray()
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None
        self._keep = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # uvloop's is no asyncio.Transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(
                ConnectionResetError("the server closed the connection before answering")
            )

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._parse()

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._answer

    def _parse(self) -> None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 or self._answer is None:
            return
        head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                self._keep = False
        if len(self._buffer) < end + 4 + length:
            return
        status = int(head[0].split(" ", 2)[1])
        body = bytes(self._buffer[end + 4 : end + 4 + length])
        del self._buffer[: end + 4 + length]
        answer, self._answer = self._answer, None
        if not answer.done():
            answer.set_result((status, body))
        if not self._keep and self.transport is not None:
            self.transport.close()

    @property
    def reusable(self) -> bool:
        return not self.closed and self._keep and self._answer is None


class LoadClient:
    """POST to URLs of 127.0.0.1 servers; one pool of idle connections per host and port."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self._timeout_s = timeout_s
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._all: set[_Connection] = set()
        self._targets: dict[str, tuple[tuple[str, int], bytes]] = {}

    def _target(self, url: str) -> tuple[tuple[str, int], bytes]:
        known = self._targets.get(url)
        if known is None:
            parts = urlsplit(url)
            host, port = parts.hostname or "127.0.0.1", parts.port or 80
            line = f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            known = self._targets[url] = ((host, port), line.encode())
        return known

    async def post(self, url: str, body: bytes, headers: bytes) -> tuple[int, bytes]:
        """`headers`: extra header lines, each ending in CRLF (Content-Type and the like)."""
        where, line = self._target(url)
        request = b"%s%sContent-Length: %d\r\n\r\n%s" % (line, headers, len(body), body)
        async with asyncio.timeout(self._timeout_s):
            connection = await self._connection(where)
            try:
                answer = await connection.send(request)
            except BaseException:
                self._discard(connection)
                raise
        if connection.reusable:
            self._idle[where].append(connection)
        else:
            self._discard(connection)
        return answer

    async def _connection(self, where: tuple[str, int]) -> _Connection:
        idle = self._idle.setdefault(where, [])
        while idle:
            connection = idle.pop()
            if connection.reusable:
                return connection
            self._discard(connection)
        transport, protocol = await asyncio.get_running_loop().create_connection(
            _Connection, *where
        )
        protocol.transport = transport  # uvloop may call connection_made a moment later
        self._all.add(protocol)
        return protocol

    def _discard(self, connection: _Connection) -> None:
        self._all.discard(connection)
        if connection.transport is not None:
            connection.transport.close()

    def close(self) -> None:
        for connection in list(self._all):
            self._discard(connection)
        self._idle.clear()
