"""POST /ussd admits the configured aggregator only, before any database work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from ipaddress import ip_network

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import Services
from handlers.gateway_auth import GatewayPolicy, parse_networks
from handlers.web import create_web_app

SECRET = "gw-secret-0123456789abcdef"
FORM = {"sessionId": "AT1", "phoneNumber": "+628123456789", "serviceCode": "*1#", "text": ""}


@pytest.fixture
async def guarded_url(services: Services) -> AsyncIterator[str]:
    app = create_web_app(services.ussd, services.health, gateway=GatewayPolicy(SECRET))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/ussd"))
    finally:
        await server.close()


async def post(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(url, data=FORM, headers=headers) as r:
        return r.status, await r.text()


async def test_without_the_secret_the_request_is_refused_before_any_work(
    guarded_url: str, services: Services
) -> None:
    await services.database.dispose()  # any database work would now fail loudly
    assert (await post(guarded_url))[0] == 403
    assert (await post(guarded_url, {"X-Gateway-Secret": "wrong-secret-000000"}))[0] == 403
    assert (await post(guarded_url + "/wrong-secret-000000"))[0] == 403


async def test_the_secret_in_a_header_or_the_path_is_admitted(guarded_url: str) -> None:
    status, body = await post(guarded_url, {"X-Gateway-Secret": SECRET})
    assert status == 200 and body.startswith("CON ")
    status, body = await post(f"{guarded_url}/{SECRET}")
    assert status == 200 and body.startswith("CON ")


def test_without_configuration_only_loopback_is_admitted() -> None:
    policy = GatewayPolicy()
    assert policy.admits("127.0.0.1", None) and policy.admits("::1", None)
    assert not policy.admits("203.0.113.7", None)
    assert not policy.admits(None, None) and not policy.admits("not-an-ip", None)
    assert "loopback" in policy.describe()


def test_networks_restrict_even_a_caller_with_the_secret() -> None:
    policy = GatewayPolicy(SECRET, parse_networks("203.0.113.0/24, 2001:db8::/32"))
    assert policy.networks == (ip_network("203.0.113.0/24"), ip_network("2001:db8::/32"))
    assert policy.admits("203.0.113.7", SECRET)
    assert not policy.admits("198.51.100.1", SECRET)
    assert not policy.admits("203.0.113.7", None)
    assert SECRET not in repr(policy) and SECRET not in policy.describe()


async def test_the_simulator_is_not_served_unless_asked(services: Services) -> None:
    server = TestServer(create_web_app(services.ussd, services.health), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("/", "/simulator"):
                async with http.get(server.make_url(path)) as response:
                    assert response.status == 404
            async with http.post(server.make_url("/simulator/ussd"), data=FORM) as response:
                assert response.status in (404, 405)
    finally:
        await server.close()
