"""One Settings object, read and validated from the environment in one place."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from yarl import URL

from bot.admission import LookupLimits

log = logging.getLogger(__name__)

DEFAULT_TELEGRAM_API_URL = "https://api.telegram.org"
MIN_SECRET_KEY_LENGTH = 32
MIN_GATEWAY_SECRET_LENGTH = 16
MIN_WEBHOOK_SECRET_LENGTH = 16
# What Telegram accepts as a webhook's secret_token.
_WEBHOOK_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
# The ports Telegram's own Bot API calls webhooks on.
TELEGRAM_WEBHOOK_PORTS = (443, 80, 88, 8443)
SANDBOX_REGISTRY_TOKEN = "sandbox-token"  # noqa: S105 - public on purpose, sandbox only
SUPPORTED_DATABASES = ("sqlite+aiosqlite", "postgresql+asyncpg")


class SettingsError(ValueError):
    """A configuration value is wrong; the message is one line naming the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    database_pool_size: int
    registry_url: str | None
    registry_token: str
    telegram_bot_token: str | None
    telegram_api_url: str
    http_host: str
    http_port: int
    secret_key: str
    var_dir: Path
    ussd_lookup_budget_s: float
    conversation_idle_minutes: int
    lookups_short_limit: int
    lookups_short_window_minutes: int
    lookups_per_day: int
    name_failures_per_nik: int
    lookups_global_per_minute: int
    facilitator_lookups_short_limit: int
    facilitator_lookups_per_day: int
    facilitator_filings_per_day: int
    facilitator_subscriptions_max: int
    sandbox_households: int
    sandbox_seed: int
    log_level: str
    blob_dir: Path
    photo_max_bytes: int
    photo_max_pixels: int
    filings_per_day: int
    objection_area: str
    outbox_max_attempts: int
    outbox_max_age_hours: int
    outbox_lease_s: float
    subscriptions_per_chat: int
    notice_rate: float
    telegram_messages_per_second: float
    notice_paid_broadcast: bool
    notice_poll_minutes: int
    notice_lease_s: float
    ussd_gateway_secret: str | None
    ussd_gateway_networks: str
    simulator: str  # auto (with the sandbox only), on, off
    log_format: str  # text or json
    photo_retention_days: int
    facilitator_retention_days: int
    sealing_keys_file: Path
    public_url: str | None  # set: Telegram calls the webhook instead of being polled
    telegram_webhook_secret: str | None  # None: derived from secret_key

    def __repr__(self) -> str:
        # Settings end up in reprs of whatever holds them: never print a secret.
        secrets_shown = {
            "database_url": _redacted(self.database_url),
            "registry_token": "***",
            "telegram_bot_token": None if self.telegram_bot_token is None else "***",
            "secret_key": "***",
            "ussd_gateway_secret": None if self.ussd_gateway_secret is None else "***",
            "telegram_webhook_secret": None if self.telegram_webhook_secret is None else "***",
        }
        shown = ", ".join(
            f"{name}={secrets_shown.get(name, getattr(self, name))!r}"
            for name in self.__dataclass_fields__
        )
        return f"Settings({shown})"

    __str__ = __repr__

    @property
    def uses_sandbox(self) -> bool:
        """No registry configured: the sandbox registry runs in-process."""
        return self.registry_url is None

    @property
    def simulator_enabled(self) -> bool:
        """The simulator lets anyone play a phone: only with the sandbox, unless asked."""
        return self.simulator == "on" or (self.simulator == "auto" and self.uses_sandbox)

    @property
    def lookup_limits(self) -> LookupLimits:
        return LookupLimits(
            short_limit=self.lookups_short_limit,
            short_window=timedelta(minutes=self.lookups_short_window_minutes),
            per_day=self.lookups_per_day,
            name_failures_per_nik=self.name_failures_per_nik,
            global_per_minute=self.lookups_global_per_minute,
        )

    @property
    def facilitator_lookup_limits(self) -> LookupLimits:
        """A facilitator's own limits per chat; per NIK and service-wide, everyone's."""
        return replace(
            self.lookup_limits,
            short_limit=self.facilitator_lookups_short_limit,
            per_day=self.facilitator_lookups_per_day,
        )

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram_bot_token is not None

    @property
    def telegram_webhook(self) -> bool:
        """Telegram calls the web server (webhook mode) instead of being polled."""
        return self.telegram_enabled and self.public_url is not None

    @property
    def telegram_webhook_secret_token(self) -> str:
        """What Telegram sends with each webhook call: TELEGRAM_WEBHOOK_SECRET, or one
        derived from BOT_SECRET_KEY, so that every instance sharing the key agrees."""
        if self.telegram_webhook_secret is not None:
            return self.telegram_webhook_secret
        label = b"bansos-bot telegram webhook secret"
        return hmac.new(self.secret_key.encode("utf-8"), label, hashlib.sha256).hexdigest()

    @property
    def telegram_bot_api_base(self) -> str:
        """`base_url` for python-telegram-bot; it appends the token itself."""
        return f"{self.telegram_api_url}/bot"

    @property
    def telegram_file_api_base(self) -> str:
        return f"{self.telegram_api_url}/file/bot"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the environment; raise SettingsError with a one-line reason on a bad value."""
    env = os.environ if env is None else env
    var_dir = _var_dir(env)
    telegram_api_url = _http_url(env, "TELEGRAM_API_URL", DEFAULT_TELEGRAM_API_URL)

    return Settings(
        database_url=_database_url(env, var_dir),
        database_pool_size=_integer(env, "DATABASE_POOL_SIZE", 20, low=1, high=500),
        registry_url=_optional_http_url(env, "REGISTRY_URL"),
        registry_token=_registry_token(env),
        telegram_bot_token=_telegram_token(env),
        telegram_api_url=telegram_api_url,
        http_host=_text(env, "HTTP_HOST", "127.0.0.1"),
        http_port=_integer(env, "HTTP_PORT", 8080, low=0, high=65535),
        secret_key=_secret_key(env, var_dir),
        var_dir=var_dir,
        ussd_lookup_budget_s=_number(env, "USSD_LOOKUP_BUDGET_S", 3.0, low=0.2, high=20.0),
        conversation_idle_minutes=_integer(env, "CONVERSATION_IDLE_MINUTES", 30, low=1, high=1440),
        lookups_short_limit=_integer(env, "LOOKUPS_SHORT_LIMIT", 5, low=1, high=100_000),
        lookups_short_window_minutes=_integer(
            env, "LOOKUPS_SHORT_WINDOW_MINUTES", 10, low=1, high=1440
        ),
        lookups_per_day=_integer(env, "LOOKUPS_PER_DAY", 20, low=1, high=1_000_000),
        name_failures_per_nik=_integer(env, "NAME_FAILURES_PER_NIK", 5, low=1, high=1000),
        lookups_global_per_minute=_integer(
            env, "LOOKUPS_GLOBAL_PER_MINUTE", 6000, low=1, high=10_000_000
        ),
        facilitator_lookups_short_limit=_integer(
            env, "FACILITATOR_LOOKUPS_SHORT_LIMIT", 30, low=1, high=100_000
        ),
        facilitator_lookups_per_day=_integer(
            env, "FACILITATOR_LOOKUPS_PER_DAY", 300, low=1, high=1_000_000
        ),
        facilitator_filings_per_day=_integer(
            env, "FACILITATOR_FILINGS_PER_DAY", 50, low=1, high=10_000
        ),
        facilitator_subscriptions_max=_integer(
            env, "FACILITATOR_SUBSCRIPTIONS_MAX", 500, low=1, high=100_000
        ),
        sandbox_households=_integer(env, "SANDBOX_HOUSEHOLDS", 2000, low=1, high=1_000_000),
        sandbox_seed=_integer(env, "SANDBOX_SEED", 42, low=0, high=2**31),
        log_level=_choice(env, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        blob_dir=_blob_dir(env, var_dir),
        photo_max_bytes=_integer(
            env, "PHOTO_MAX_BYTES", 10 * 1024 * 1024, low=100_000, high=20 * 1024 * 1024
        ),
        photo_max_pixels=_integer(
            env, "PHOTO_MAX_PIXELS", 40_000_000, low=1_000_000, high=150_000_000
        ),
        filings_per_day=_integer(env, "FILINGS_PER_DAY", 5, low=1, high=10_000),
        objection_area=_choice(
            env, "OBJECTION_AREA", "KECAMATAN", ("KECAMATAN", "KABUPATEN", "PROVINCE", "OFF")
        ).lower(),
        outbox_max_attempts=_integer(env, "OUTBOX_MAX_ATTEMPTS", 12, low=1, high=1000),
        outbox_max_age_hours=_integer(env, "OUTBOX_MAX_AGE_HOURS", 72, low=1, high=24 * 60),
        outbox_lease_s=_number(env, "OUTBOX_LEASE_S", 60.0, low=1.0, high=3600.0),
        subscriptions_per_chat=_integer(env, "SUBSCRIPTIONS_PER_CHAT", 5, low=1, high=100),
        notice_rate=_number(env, "NOTICE_RATE", 25.0, low=0.1, high=1000.0),
        telegram_messages_per_second=_number(
            env, "TELEGRAM_MESSAGES_PER_SECOND", 30.0, low=1.0, high=1000.0
        ),
        notice_paid_broadcast=_choice(env, "NOTICE_PAID_BROADCAST", "NO", ("NO", "YES")) == "YES",
        notice_poll_minutes=_integer(env, "NOTICE_POLL_MINUTES", 15, low=1, high=24 * 60),
        notice_lease_s=_number(env, "NOTICE_LEASE_S", 30.0, low=1.0, high=3600.0),
        ussd_gateway_secret=_gateway_secret(env),
        ussd_gateway_networks=_networks(env),
        simulator=_choice(env, "SIMULATOR", "AUTO", ("AUTO", "ON", "OFF")).lower(),
        log_format=_choice(env, "LOG_FORMAT", "TEXT", ("TEXT", "JSON")).lower(),
        photo_retention_days=_integer(env, "PHOTO_RETENTION_DAYS", 30, low=1, high=3650),
        facilitator_retention_days=_integer(
            env, "FACILITATOR_RETENTION_DAYS", 90, low=1, high=3650
        ),
        sealing_keys_file=Path(_text(env, "SEALING_KEYS_FILE", str(var_dir / "sealing-keys.json"))),
        public_url=_public_url(env, official_bot_api=telegram_api_url == DEFAULT_TELEGRAM_API_URL),
        telegram_webhook_secret=_webhook_secret(env),
    )


def _var_dir(env: Mapping[str, str]) -> Path:
    """BOT_VAR_DIR, checked whenever something is kept there by default."""
    var_dir = Path(_text(env, "BOT_VAR_DIR", "var"))
    kept_elsewhere = ("BOT_SECRET_KEY", "DATABASE_URL", "BLOB_DIR", "SEALING_KEYS_FILE")
    if not all(env.get(name, "").strip() for name in kept_elsewhere):
        _check_writable_directory("BOT_VAR_DIR", var_dir)
    return var_dir


def _blob_dir(env: Mapping[str, str], var_dir: Path) -> Path:
    if not env.get("BLOB_DIR", "").strip():
        return var_dir / "blobs"
    blob_dir = Path(_text(env, "BLOB_DIR", ""))
    _check_writable_directory("BLOB_DIR", blob_dir)
    return blob_dir


def _check_writable_directory(name: str, path: Path) -> None:
    """`path` is a directory this process can write to, or one it can create. Checked,
    not created: whatever is kept there creates it when first needed."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == path:
        if not path.is_dir():
            raise SettingsError(f"{name} must be a directory, but {path} is not one")
        if not os.access(path, os.W_OK | os.X_OK):
            raise SettingsError(f"{name} is not writable by this process: {path}")
        return
    if not existing.is_dir():
        raise SettingsError(f"{name} cannot be created at {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SettingsError(f"{name} cannot be created at {path}: {existing} is not writable")


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def _integer(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _number(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().upper() or default
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _http_url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip() or default
    try:
        url = URL(raw)
    except ValueError:
        raise SettingsError(f"{name} is not a URL: {raw!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise SettingsError(f"{name} must be an http(s) URL with a host, got {raw!r}")
    return raw.rstrip("/")


def _optional_http_url(env: Mapping[str, str], name: str) -> str | None:
    if not env.get(name, "").strip():
        return None
    return _http_url(env, name, "")


def _database_url(env: Mapping[str, str], var_dir: Path) -> str:
    raw = env.get("DATABASE_URL", "").strip()
    if not raw:
        return f"sqlite+aiosqlite:///{var_dir / 'bansos-bot.sqlite3'}"
    try:
        url = make_url(raw)
    except ArgumentError:
        raise SettingsError(f"DATABASE_URL is not a database URL: {_redacted(raw)!r}") from None
    if url.drivername == "postgresql":  # the async driver is the only one installed
        url = url.set(drivername="postgresql+asyncpg")
    if url.drivername == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    if url.drivername not in SUPPORTED_DATABASES:
        raise SettingsError(
            f"DATABASE_URL must use one of {', '.join(SUPPORTED_DATABASES)}, got {url.drivername!r}"
        )
    return url.render_as_string(hide_password=False)


def _redacted(raw: str) -> str:
    """A database URL without its password, fit for an error message."""
    head, at, tail = raw.rpartition("@")
    if not at:
        return raw
    scheme, _, credentials = head.partition("://")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"


def _telegram_token(env: Mapping[str, str]) -> str | None:
    raw = env.get("TELEGRAM_BOT_TOKEN", "").strip()
    if not raw:
        return None
    bot_id, colon, secret = raw.partition(":")
    if not (colon and bot_id.isdigit() and len(secret) >= 20):
        raise SettingsError("TELEGRAM_BOT_TOKEN does not look like a bot token (digits:secret)")
    return raw


def _secret_key(env: Mapping[str, str], var_dir: Path) -> str:
    raw = env.get("BOT_SECRET_KEY", "").strip()
    if raw:
        if len(raw) < MIN_SECRET_KEY_LENGTH:
            raise SettingsError(
                f"BOT_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters of random text"
            )
        return raw
    return _embedded_secret_key(var_dir)


def _embedded_secret_key(var_dir: Path) -> str:
    """Create (once) and reuse a key file, so a first run needs no set-up."""
    key_file = var_dir / "secret.key"
    try:
        if key_file.exists():
            key = key_file.read_text(encoding="ascii").strip()
            if len(key) >= MIN_SECRET_KEY_LENGTH:
                log.warning("BOT_SECRET_KEY is not set: using the embedded key in %s", key_file)
                return key
            raise SettingsError(f"{key_file} is damaged; delete it or set BOT_SECRET_KEY")
        var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
    except UnicodeDecodeError:
        raise SettingsError(f"{key_file} is damaged; delete it or set BOT_SECRET_KEY") from None
    except OSError as problem:
        reason = problem.strerror or type(problem).__name__
        raise SettingsError(
            f"BOT_VAR_DIR: cannot keep the embedded key in {key_file} ({reason}); "
            "fix the directory or set BOT_SECRET_KEY"
        ) from None
    log.warning(
        "BOT_SECRET_KEY is not set: created %s. Keep it safe: without it, stored data "
        "cannot be read.",
        key_file,
    )
    return key


def _registry_token(env: Mapping[str, str]) -> str:
    token = env.get("REGISTRY_TOKEN", "").strip()
    if token:
        return token
    if env.get("REGISTRY_URL", "").strip():
        # The sandbox's public token must never be sent to a real registry by accident.
        raise SettingsError("REGISTRY_TOKEN must be set when REGISTRY_URL is set")
    return SANDBOX_REGISTRY_TOKEN


def _gateway_secret(env: Mapping[str, str]) -> str | None:
    secret = env.get("USSD_GATEWAY_SECRET", "").strip()
    if not secret:
        return None
    if len(secret) < MIN_GATEWAY_SECRET_LENGTH or not secret.isascii() or "/" in secret:
        raise SettingsError(
            f"USSD_GATEWAY_SECRET must be at least {MIN_GATEWAY_SECRET_LENGTH} ASCII "
            "characters without '/'"
        )
    return secret


def _networks(env: Mapping[str, str]) -> str:
    from handlers.gateway_auth import BadNetwork, parse_networks

    raw = env.get("USSD_GATEWAY_NETWORKS", "").strip()
    try:
        parse_networks(raw)
    except BadNetwork as problem:
        raise SettingsError(f"USSD_GATEWAY_NETWORKS: not a network: {problem}") from None
    return raw


def _public_url(env: Mapping[str, str], *, official_bot_api: bool) -> str | None:
    """PUBLIC_URL: the https origin (and path prefix, if any) the service is reached at.
    Plain http only on a loopback host, for a proxy or a test on the same machine."""
    raw = env.get("PUBLIC_URL", "").strip()
    if not raw:
        return None
    try:
        url = URL(raw)
    except ValueError:
        raise SettingsError(f"PUBLIC_URL is not a URL: {raw!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise SettingsError(f"PUBLIC_URL must be an https URL with a host, got {raw!r}")
    if "?" in raw or "#" in raw or url.user is not None:
        raise SettingsError("PUBLIC_URL must not have a query, a fragment or credentials")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise SettingsError(f"PUBLIC_URL must use https (http only for loopback), got {raw!r}")
    # Telegram's own servers call webhooks on these ports alone; a self-hosted Bot API
    # server calls any port.
    if official_bot_api and url.scheme == "https" and url.port not in TELEGRAM_WEBHOOK_PORTS:
        ports = ", ".join(map(str, TELEGRAM_WEBHOOK_PORTS))
        raise SettingsError(f"PUBLIC_URL: Telegram calls webhooks on ports {ports} only")
    return raw.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _webhook_secret(env: Mapping[str, str]) -> str | None:
    raw = env.get("TELEGRAM_WEBHOOK_SECRET", "").strip()
    if not raw:
        return None
    if len(raw) < MIN_WEBHOOK_SECRET_LENGTH or not _WEBHOOK_SECRET_RE.fullmatch(raw):
        raise SettingsError(
            f"TELEGRAM_WEBHOOK_SECRET must be {MIN_WEBHOOK_SECRET_LENGTH} to 256 characters "
            "of A-Z, a-z, 0-9, _ and -"
        )
    return raw
