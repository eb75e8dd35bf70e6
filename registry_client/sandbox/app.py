"""The sandbox registry: a real aiohttp server that speaks docs/registry-api.md over a synthetic
population, with injectable faults (errors, latency, outage) for tests and demos."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import random
import re
import signal
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, TypeGuard

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from registry_client.models import PROGRAMME_CODES, ProgrammeStatus, StatusReport
from registry_client.sandbox.masking import mask_name, normalize_name
from registry_client.sandbox.participation import (
    SUBMISSIONS_PATH,
    Refusal,
    add_participation,
    json_object,
)
from registry_client.sandbox.population import (
    HouseholdRecord,
    Person,
    Population,
    generate_population,
)
from registry_client.sandbox.quarters import add_quarters

logger = logging.getLogger(__name__)

# Public on purpose: the sandbox holds synthetic people only, and demos need the token.
SANDBOX_TOKEN: Final = "sandbox-token"  # noqa: S105
_NIK: Final = re.compile(r"[0-9]{16}")
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_MAX_SAMPLE: Final = 1000
_MAX_LATENCY_MS: Final = 600_000
# How much of an unread request body is read and dropped before answering, and for how long.
_DISCARD_BYTES: Final = 64 * 1024 * 1024
_DISCARD_SECONDS: Final = 10.0
# Calls that file something: their body is read before an injected delay (_inject_faults).
_WRITES: Final = frozenset({SUBMISSIONS_PATH})
# The one answer for an unknown NIK and for a wrong name alike: the API is no oracle.
_NOT_FOUND: Final = {"found": False}

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Faults:
    """What the sandbox currently does wrong on /v1 calls."""

    error_rate: float = 0.0
    latency_ms: float = 0.0
    down: bool = False


@dataclass(slots=True)
class _State:
    population: Population
    token: str
    faults: Faults
    # Separate from the population's source, so injecting faults never changes who exists.
    fault_rng: random.Random
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


_STATE: Final = web.AppKey("sandbox_state", _State)


def create_sandbox_app(
    population: Population, *, token: str, fault_seed: int | None = None
) -> web.Application:
    """The sandbox registry as an aiohttp application (routes, auth, faults, error JSON)."""
    app = web.Application(
        middlewares=[_echo_request_id, _answer_after_upload, _errors_as_json, _inject_faults, _auth]
    )
    rng_seed = f"faults-{population.seed if fault_seed is None else fault_seed}"
    app[_STATE] = _State(
        population=population,
        token=token,
        faults=Faults(),
        fault_rng=random.Random(rng_seed),  # noqa: S311 - fault injection, not security
    )
    app.on_shutdown.append(_wake_delayed_requests)
    app.router.add_get("/v1/health", _health)
    app.router.add_post("/v1/status/lookup", _look_up_status)
    app.router.add_get("/sandbox/people", _sample_people)
    app.router.add_get("/sandbox/faults", _get_faults)
    app.router.add_post("/sandbox/faults", _set_faults)
    add_participation(app, population)
    add_quarters(app, population)
    return app


@dataclass(frozen=True, slots=True)
class RunningSandbox:
    """A sandbox registry serving in this process; `url` is what a RegistryClient needs."""

    url: str
    population: Population
    token: str
    runner: web.AppRunner = field(repr=False)

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_sandbox(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    households: int = 2000,
    seed: int = 42,
    token: str = SANDBOX_TOKEN,
) -> RunningSandbox:
    """Generate a population and serve it; port 0 picks a free port."""
    # Generating a large population takes a moment; keep the event loop free meanwhile.
    population = await asyncio.to_thread(generate_population, households, seed)
    runner = web.AppRunner(create_sandbox_app(population, token=token))
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_port = runner.addresses[0][1]
    except BaseException:
        await runner.cleanup()
        raise
    return RunningSandbox(
        url=f"http://{_url_host(host)}:{bound_port}",
        population=population,
        token=token,
        runner=runner,
    )


def run_sandbox_forever(
    host: str = "127.0.0.1",
    port: int = 8090,
    households: int = 10_000,
    seed: int = 42,
    token: str = SANDBOX_TOKEN,
) -> None:
    """Serve a sandbox registry until Ctrl-C or SIGTERM (the `sandbox-registry` command)."""
    # On platforms without loop signal handlers Ctrl-C arrives as KeyboardInterrupt; the
    # sandbox is stopped in _serve_until_stopped's finally either way.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_until_stopped(host, port, households, seed, token))


async def _serve_until_stopped(
    host: str, port: int, households: int, seed: int, token: str
) -> None:
    sandbox = await start_sandbox(
        host=host, port=port, households=households, seed=seed, token=token
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
    try:
        print(_banner(sandbox, households, seed), flush=True)
        await stop.wait()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        await sandbox.stop()
        print("Sandbox registry stopped.", flush=True)


def _banner(sandbox: RunningSandbox, households: int, seed: int) -> str:
    lines = [
        f"Sandbox registry: {households} households (seed {seed}) at {sandbox.url}",
        f"Token: {sandbox.token}",
        "Sample NIK + name pairs (synthetic people) and their active programmes:",
    ]
    population = sandbox.population
    shown: set[str] = set()
    # One person per programme where possible, then anyone, so every answer kind shows up.
    for programme in (*PROGRAMME_CODES, None):
        candidates = population.sample(len(shown) + 1, programme)
        person = next((p for p in candidates if p.nik not in shown), None)
        found = population.find(person.nik) if person is not None else None
        if person is None or found is None:
            continue
        shown.add(person.nik)
        active = [p.code for p in found[1].programmes if p.status == "active"]
        lines.append(f"  {person.nik}  {person.name:<28} {', '.join(active) or '-'}")
    lines.append("Stop with Ctrl-C.")
    return "\n".join(lines)


def _url_host(host: str) -> str:
    # A wildcard address is where the server listens, not where a client connects to.
    if host in ("", "0.0.0.0"):  # noqa: S104 - mapping the wildcard, not binding to it
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


# --- middlewares --------------------------------------------------------------------------


@web.middleware
async def _echo_request_id(request: web.Request, handler: _Handler) -> web.StreamResponse:
    sent = request.headers.get("X-Request-ID", "")
    request_id = sent if _REQUEST_ID.fullmatch(sent) else str(uuid.uuid4())
    response = await handler(request)
    response.headers["X-Request-ID"] = request_id
    return response


@web.middleware
async def _answer_after_upload(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Answer once the client has sent its whole body, even when it went unread (a refusal,
    a replayed submission). Answered mid-upload, aiohttp's client drops the connection and
    aiohttp's server then waits out its 10 s lingering close on it, holding up shutdown."""
    response = await handler(request)
    content = request.content
    left = _DISCARD_BYTES
    with contextlib.suppress(TimeoutError, OSError, ValueError, HttpProcessingError):
        async with asyncio.timeout(_DISCARD_SECONDS):
            while left > 0 and not content.at_eof():
                left -= len(await content.readany())
    return response


@web.middleware
async def _errors_as_json(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Every refusal, including aiohttp's own 404/405/413, as `{"error": {code, message}}`."""
    try:
        return await handler(request)
    except Refusal as error:
        response = _error(error.status, error.code, error.message)
        if error.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _error(error.status, _code_for(error.status), error.reason)
    except Exception:
        logger.exception("sandbox registry: unhandled error on %s", request.path)
        return _error(500, "internal_error", "The sandbox registry failed.")


@web.middleware
async def _inject_faults(request: web.Request, handler: _Handler) -> web.StreamResponse:
    if not request.path.startswith("/v1/"):
        return await handler(request)
    state = request.app[_STATE]
    if request.method == "POST" and request.path in _WRITES:
        # A write is taken in full, then answered late: a client that gives up meanwhile
        # has still filed it, which its retry under the same Idempotency-Key must cope with.
        # (Delaying first would lose it: aiohttp fails the body's reads once the client
        # has hung up.)
        _fail_as_configured(state)
        response = await handler(request)
        await _delay(state)
        return response
    await _delay(state)
    _fail_as_configured(state)
    return await handler(request)


async def _delay(state: _State) -> None:
    if state.faults.latency_ms > 0:
        # Woken early when the server shuts down, so stopping never waits for a fault.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.stopping.wait(), state.faults.latency_ms / 1000)


def _fail_as_configured(state: _State) -> None:
    faults = state.faults
    if faults.down or state.stopping.is_set():
        raise Refusal(503, "unavailable", "The registry is down.")
    if faults.error_rate > 0 and state.fault_rng.random() < faults.error_rate:
        raise Refusal(503, "unavailable", "The registry failed to answer.")


@web.middleware
async def _auth(request: web.Request, handler: _Handler) -> web.StreamResponse:
    # The contract's calls need the token; the /sandbox/ tools are for local tests and
    # demos over synthetic people, and stay open so a shell or a test can flip faults.
    if not request.path.startswith("/v1/"):
        return await handler(request)
    expected = f"Bearer {request.app[_STATE].token}".encode()
    sent = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(sent, expected):
        raise Refusal(401, "unauthorized", "A valid bearer token is required.")
    return await handler(request)


async def _wake_delayed_requests(app: web.Application) -> None:
    app[_STATE].stopping.set()


# --- handlers -----------------------------------------------------------------------------


async def _health(request: web.Request) -> web.Response:
    # Under /v1/: it needs the token and answers 503 while the sandbox is `down`.
    return web.json_response({"status": "ok"})


async def _look_up_status(request: web.Request) -> web.Response:
    body = await json_object(request)
    nik, name, channel = body.get("nik"), body.get("name"), body.get("channel")
    if not isinstance(nik, str) or not isinstance(name, str) or not isinstance(channel, str):
        raise Refusal(400, "invalid_request", "nik, name and channel must be strings.")
    if not channel or len(channel) > 32:
        raise Refusal(400, "invalid_request", "channel must be 1 to 32 characters.")
    if not _NIK.fullmatch(nik):
        raise Refusal(422, "invalid_nik", "nik must be 16 digits.")
    state = request.app[_STATE]
    found = state.population.find(nik)
    if found is None or not _same_name(found[0].name, name):
        return web.json_response(_NOT_FOUND)
    person, household = found
    return web.json_response(_encode_report(_report(person, household, state.population.quarter)))


async def _sample_people(request: web.Request) -> web.Response:
    try:
        limit = int(request.query.get("limit", "10"))
    except ValueError:
        limit = -1
    if not 1 <= limit <= _MAX_SAMPLE:
        raise Refusal(400, "invalid_request", f"limit must be 1 to {_MAX_SAMPLE}.")
    programme = request.query.get("programme")
    if programme is not None and programme not in PROGRAMME_CODES:
        raise Refusal(400, "invalid_request", "Unknown programme code.")
    people = request.app[_STATE].population.sample(limit, programme)
    return web.json_response({"items": [{"nik": p.nik, "name": p.name} for p in people]})


async def _get_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": _encode_faults(request.app[_STATE].faults)})


async def _set_faults(request: web.Request) -> web.Response:
    """Replace the faults as a whole: what the body leaves out is switched off."""
    body = await json_object(request)
    unknown = set(body) - {"error_rate", "latency_ms", "down"}
    if unknown:
        raise Refusal(400, "invalid_request", "Only error_rate, latency_ms and down.")
    error_rate = body.get("error_rate", 0.0)
    latency_ms = body.get("latency_ms", 0)
    down = body.get("down", False)
    if not _is_number(error_rate) or not 0 <= error_rate <= 1:
        raise Refusal(400, "invalid_request", "error_rate must be a number from 0 to 1.")
    if not _is_number(latency_ms) or not 0 <= latency_ms <= _MAX_LATENCY_MS:
        raise Refusal(400, "invalid_request", "latency_ms must be 0 to 600000.")
    if not isinstance(down, bool):
        raise Refusal(400, "invalid_request", "down must be true or false.")
    state = request.app[_STATE]
    state.faults = Faults(error_rate=float(error_rate), latency_ms=float(latency_ms), down=down)
    return web.json_response({"faults": _encode_faults(state.faults)})


# --- encoding -----------------------------------------------------------------------------


def _report(person: Person, household: HouseholdRecord, quarter: str) -> StatusReport:
    return StatusReport(
        quarter=quarter,
        name_masked=mask_name(person.name),
        household=household.summary(),
        programmes=household.programmes,
        updated_at=household.updated_at,
    )


def _encode_report(report: StatusReport) -> dict[str, object]:
    return {
        "found": True,
        "quarter": report.quarter,
        "name_masked": report.name_masked,
        "household": {
            "decile": report.household.decile,
            "kecamatan_code": report.household.kecamatan_code,
            "members": report.household.members,
        },
        "programmes": [_encode_programme(programme) for programme in report.programmes],
        "updated_at": report.updated_at.isoformat(),
    }


def _encode_programme(programme: ProgrammeStatus) -> dict[str, object]:
    # Only the fields that apply: the contract leaves absent what does not.
    document: dict[str, object] = {"code": programme.code, "status": programme.status}
    optional = {
        "since": programme.since,
        "until": programme.until,
        "amount_idr": programme.amount_idr,
        "period": programme.period,
        "reason_code": programme.reason_code,
    }
    document.update({key: value for key, value in optional.items() if value is not None})
    return document


def _encode_faults(faults: Faults) -> dict[str, object]:
    return {"error_rate": faults.error_rate, "latency_ms": faults.latency_ms, "down": faults.down}


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _code_for(status: int) -> str:
    return {
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }.get(status, "invalid_request" if status < 500 else "internal_error")


def _same_name(on_record: str, given: str) -> bool:
    return hmac.compare_digest(normalize_name(on_record).encode(), normalize_name(given).encode())


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
