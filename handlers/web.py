"""The aiohttp web server: USSD callback, health check and the USSD simulator page."""

from __future__ import annotations

import logging

from aiohttp import hdrs, web

from bot.health import Health
from handlers.gateway_auth import SECRET_HEADER, GatewayPolicy
from handlers.simulator_page import page_language, render_simulator_page
from handlers.ussd import (
    BadUssdRequest,
    UssdService,
    format_africas_talking,
    parse_africas_talking,
    unavailable_screen,
)

log = logging.getLogger(__name__)

USSD_SERVICE = web.AppKey("ussd_service", UssdService)
HEALTH = web.AppKey("health", Health)
GATEWAY = web.AppKey("gateway", GatewayPolicy)


def create_web_app(
    ussd: UssdService,
    health: Health,
    *,
    gateway: GatewayPolicy | None = None,
    simulator: bool = False,
) -> web.Application:
    """The routes; the simulator page (and its own USSD endpoint, for the browser) only
    when asked for: it lets anyone play a phone number."""
    app = web.Application(client_max_size=64 * 1024)
    app[USSD_SERVICE] = ussd
    app[HEALTH] = health
    app[GATEWAY] = gateway or GatewayPolicy()
    app.router.add_post("/ussd", gateway_callback)
    app.router.add_post("/ussd/{secret}", gateway_callback)
    app.router.add_get("/healthz", health_check)
    if simulator:
        app.router.add_get("/", simulator_page)
        app.router.add_get("/simulator", simulator_page)
        app.router.add_post("/simulator/ussd", ussd_callback)
    return app


async def gateway_callback(request: web.Request) -> web.Response:
    """POST /ussd from the aggregator: refused before any work unless it is admitted."""
    sent = request.match_info.get("secret") or request.headers.get(SECRET_HEADER)
    if not request.app[GATEWAY].admits(request.remote, sent):
        return web.Response(status=403, text="forbidden")
    return await ussd_callback(request)


async def ussd_callback(request: web.Request) -> web.Response:
    try:
        form = await request.post()
    except (ValueError, LookupError):  # UnicodeDecodeError is a ValueError
        # An invalid UTF-8 byte, an unknown charset, a multipart body without a boundary:
        # the gateway sent something we cannot read, which is its error, not ours.
        return web.Response(status=400, text="unreadable form body")
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    try:
        ussd_request = parse_africas_talking(fields)
    except BadUssdRequest as problem:
        return web.Response(status=400, text=str(problem))
    try:
        screen = await request.app[USSD_SERVICE].answer(ussd_request)
    except Exception:
        # The gateway shows whatever we answer: never a stack trace, always a way out.
        log.exception("USSD request failed")
        screen = unavailable_screen()
    return web.Response(text=format_africas_talking(screen), content_type="text/plain")


async def health_check(request: web.Request) -> web.Response:
    report = await request.app[HEALTH].check()
    status = 200 if report.ok else 503
    body = {"status": "ok" if report.ok else "degraded", "database": report.database}
    return web.json_response(body, status=status)


async def simulator_page(request: web.Request) -> web.Response:
    language = page_language(request.query.get("lang"), request.headers.get(hdrs.ACCEPT_LANGUAGE))
    return web.Response(
        text=render_simulator_page(language),
        content_type="text/html",
        headers={hdrs.CONTENT_LANGUAGE: language, hdrs.VARY: hdrs.ACCEPT_LANGUAGE},
    )
