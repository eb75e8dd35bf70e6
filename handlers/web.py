"""The aiohttp web server: USSD callback, liveness, readiness, metrics, the USSD
simulator page and, in webhook mode, Telegram's webhook."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import hdrs, web
from prometheus_client import CONTENT_TYPE_LATEST

from bot import metrics
from bot.health import Health
from bot.request_context import accepted_request_id, request_id_bound
from handlers.gateway_auth import SECRET_HEADER, GatewayPolicy
from handlers.simulator_page import page_language, render_simulator_page
from handlers.telegram_webhook import WEBHOOK_PATH, TelegramWebhook
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
METRICS = web.AppKey("metrics", metrics.MetricsPage)
REQUEST_ID_HEADER = "X-Request-Id"


def create_web_app(
    ussd: UssdService,
    health: Health,
    *,
    gateway: GatewayPolicy | None = None,
    simulator: bool = False,
    metrics_page: metrics.MetricsPage | None = None,
    telegram_webhook: TelegramWebhook | None = None,
) -> web.Application:
    """The routes; the simulator page (and its own USSD endpoint, for the browser) only
    when asked for: it lets anyone play a phone number. Without `metrics_page`, /metrics
    shows the counters but not the gauges read from the database. With
    `telegram_webhook`, POST /telegram/webhook takes Telegram's updates.

    /healthz, /readyz and /metrics need no gateway secret. /metrics tells the outbox's
    depth and the traffic: operators keep it off the public internet (a reverse proxy
    that forwards /ussd alone, or an allow-list)."""
    app = web.Application(client_max_size=64 * 1024, middlewares=[request_id_middleware])
    app[USSD_SERVICE] = ussd
    app[HEALTH] = health
    app[GATEWAY] = gateway or GatewayPolicy()
    if metrics_page is not None:
        app[METRICS] = metrics_page
    app.router.add_post("/ussd", gateway_callback)
    app.router.add_post("/ussd/{secret}", gateway_callback)
    app.router.add_get("/healthz", liveness)
    app.router.add_get("/readyz", readiness)
    app.router.add_get("/metrics", metrics_scrape)
    if telegram_webhook is not None:
        app.router.add_post(WEBHOOK_PATH, telegram_webhook.receive)
    if simulator:
        app.router.add_get("/", simulator_page)
        app.router.add_get("/simulator", simulator_page)
        app.router.add_post("/simulator/ussd", ussd_callback)
    return app


@web.middleware
async def request_id_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every request gets an id, for its log lines and in its answer; each USSD request
    ends with one access line. Never the path (it may hold the gateway's secret), the
    phone number or the text: status and latency are enough to trace a slow or failed one."""
    request_id = accepted_request_id(request.headers.get(REQUEST_ID_HEADER))
    started = time.perf_counter()
    outcome: int | Literal["error"] = "error"
    with request_id_bound(request_id):
        try:
            response = await handler(request)
            outcome = response.status
        except web.HTTPException as answer:
            outcome = answer.status
            answer.headers[REQUEST_ID_HEADER] = request_id
            raise
        finally:
            if request.match_info.handler in _USSD_HANDLERS:
                seconds = time.perf_counter() - started
                metrics.observe_ussd_request(outcome, seconds)
                latency_ms = round(seconds * 1000, 1)
                log.info(
                    "ussd request done: %s in %.1f ms",
                    outcome,
                    latency_ms,
                    extra={"channel": "ussd", "outcome": outcome, "latency_ms": latency_ms},
                )
    if not response.prepared:  # a streamed answer has sent its headers already
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


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


# The routes whose requests get an access line (health probes would drown them).
_USSD_HANDLERS = frozenset({gateway_callback, ussd_callback})


async def liveness(request: web.Request) -> web.Response:
    """The process serves HTTP; no database work, so a slow database never gets it killed."""
    return web.json_response({"status": "ok"})


async def readiness(request: web.Request) -> web.Response:
    """503 when the database or the registry is down; Telegram's state is told, but USSD
    keeps serving without it."""
    report = await request.app[HEALTH].check()
    body = {
        "status": "ok" if report.ok else "degraded",
        "database": report.database,
        "registry": report.registry,
        "telegram": report.telegram.value,
    }
    return web.json_response(body, status=200 if report.ok else 503)


async def metrics_scrape(request: web.Request) -> web.Response:
    page = request.app.get(METRICS)
    body = metrics.exposition() if page is None else await page.exposition()
    return web.Response(body=body, headers={hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST})


async def simulator_page(request: web.Request) -> web.Response:
    language = page_language(request.query.get("lang"), request.headers.get(hdrs.ACCEPT_LANGUAGE))
    return web.Response(
        text=render_simulator_page(language),
        content_type="text/html",
        headers={hdrs.CONTENT_LANGUAGE: language, hdrs.VARY: hdrs.ACCEPT_LANGUAGE},
    )
