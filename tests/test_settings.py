"""Settings: defaults that run with nothing set, one-line errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import Services
from bot.settings import SettingsError, load_settings


def test_defaults_need_no_configuration(tmp_path: Path) -> None:
    settings = load_settings({"BOT_VAR_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'bansos-bot.sqlite3'}"
    assert settings.uses_sandbox and not settings.telegram_enabled
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert settings.telegram_bot_api_base == "https://api.telegram.org/bot"
    assert settings.telegram_file_api_base == "https://api.telegram.org/file/bot"
    assert settings.ussd_lookup_budget_s == 3.0
    assert settings.facilitator_retention_days == 90


def test_embedded_secret_key_is_created_once_private_and_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = load_settings({"BOT_VAR_DIR": str(tmp_path)}).secret_key
    key_file = tmp_path / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_settings({"BOT_VAR_DIR": str(tmp_path)}).secret_key == first
    assert len(first) >= 32
    assert any("BOT_SECRET_KEY" in record.getMessage() for record in caplog.records)


def test_self_hosted_bot_api_server_urls_are_derived(tmp_path: Path) -> None:
    settings = load_settings(
        {"BOT_VAR_DIR": str(tmp_path), "TELEGRAM_API_URL": "http://127.0.0.1:8081/"}
    )
    assert settings.telegram_bot_api_base == "http://127.0.0.1:8081/bot"
    assert settings.telegram_file_api_base == "http://127.0.0.1:8081/file/bot"


def test_postgresql_url_gets_the_async_driver(tmp_path: Path) -> None:
    settings = load_settings(
        {"BOT_VAR_DIR": str(tmp_path), "DATABASE_URL": "postgresql://bot:pw@db:5432/bansos"}
    )
    assert settings.database_url == "postgresql+asyncpg://bot:pw@db:5432/bansos"


@pytest.mark.parametrize(
    ("name", "value", "mentions"),
    [
        ("HTTP_PORT", "eighty", "HTTP_PORT"),
        ("HTTP_PORT", "70000", "between 0 and 65535"),
        ("DATABASE_URL", "mysql://u:secret@db/x", "DATABASE_URL"),
        ("DATABASE_URL", "not a url", "DATABASE_URL"),
        ("REGISTRY_URL", "ftp://registry", "REGISTRY_URL"),
        ("TELEGRAM_API_URL", "api.telegram.org", "TELEGRAM_API_URL"),
        ("TELEGRAM_BOT_TOKEN", "not-a-token", "TELEGRAM_BOT_TOKEN"),
        ("BOT_SECRET_KEY", "short", "at least 32"),
        ("USSD_LOOKUP_BUDGET_S", "fast", "USSD_LOOKUP_BUDGET_S"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
        ("TELEGRAM_MESSAGES_PER_SECOND", "0", "TELEGRAM_MESSAGES_PER_SECOND"),
        ("TELEGRAM_MESSAGES_PER_SECOND", "5000", "TELEGRAM_MESSAGES_PER_SECOND"),
        ("FACILITATOR_RETENTION_DAYS", "ninety", "FACILITATOR_RETENTION_DAYS"),
        ("FACILITATOR_RETENTION_DAYS", "0", "FACILITATOR_RETENTION_DAYS must be between 1 and"),
        ("FACILITATOR_RETENTION_DAYS", "3651", "between 1 and 3650"),
    ],
)
def test_bad_values_give_one_line_naming_the_variable(
    tmp_path: Path, name: str, value: str, mentions: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"BOT_VAR_DIR": str(tmp_path), name: value})
    message = str(caught.value)
    assert mentions in message and "\n" not in message
    assert "u:secret" not in message  # a password in a URL is never echoed


def test_settings_and_services_never_print_a_secret(tmp_path: Path) -> None:
    from bot.crypto import KeyRing

    secret = "s3cret-key-" + "x" * 40
    token = "123456789:AAHsecretTelegramTokenValue123"
    settings = load_settings(
        {
            "BOT_VAR_DIR": str(tmp_path),
            "BOT_SECRET_KEY": secret,
            "TELEGRAM_BOT_TOKEN": token,
            "REGISTRY_TOKEN": "registry-secret-token",
            "DATABASE_URL": "postgresql://bot:db-password@127.0.0.1/bansos",
        }
    )
    keys = KeyRing.from_secret(secret)
    for shown in (repr(settings), str(settings), repr(keys)):
        for hidden in (
            secret,
            token,
            "registry-secret-token",
            "db-password",
            keys.sealing_key.hex(),
        ):
            assert hidden not in shown
        assert repr(keys.sealing_key) not in shown and repr(keys.hashing_key) not in shown
    assert "bot:***@127.0.0.1" in repr(settings)


def test_the_telegram_sending_rate_is_telegrams_limit_unless_set(tmp_path: Path) -> None:
    assert load_settings({"BOT_VAR_DIR": str(tmp_path)}).telegram_messages_per_second == 30.0
    paid = load_settings({"BOT_VAR_DIR": str(tmp_path), "TELEGRAM_MESSAGES_PER_SECOND": "500"})
    assert paid.telegram_messages_per_second == 500.0


def test_a_real_registry_needs_its_own_token(tmp_path: Path) -> None:
    env = {"BOT_VAR_DIR": str(tmp_path), "REGISTRY_URL": "https://registry.example.go.id"}
    with pytest.raises(SettingsError, match="REGISTRY_TOKEN"):
        load_settings(env)
    assert load_settings({**env, "REGISTRY_TOKEN": "t0ken"}).registry_token == "t0ken"
    assert load_settings({"BOT_VAR_DIR": str(tmp_path)}).registry_token == "sandbox-token"


def test_the_simulator_follows_the_sandbox_unless_set(tmp_path: Path) -> None:
    base = {"BOT_VAR_DIR": str(tmp_path)}
    real = {**base, "REGISTRY_URL": "https://r.example", "REGISTRY_TOKEN": "t"}
    assert load_settings(base).simulator_enabled
    assert not load_settings(real).simulator_enabled
    assert load_settings({**real, "SIMULATOR": "on"}).simulator_enabled
    assert not load_settings({**base, "SIMULATOR": "off"}).simulator_enabled


def test_gateway_settings_are_checked(tmp_path: Path) -> None:
    base = {"BOT_VAR_DIR": str(tmp_path)}
    with pytest.raises(SettingsError, match="USSD_GATEWAY_SECRET"):
        load_settings({**base, "USSD_GATEWAY_SECRET": "short"})
    with pytest.raises(SettingsError, match="USSD_GATEWAY_NETWORKS"):
        load_settings({**base, "USSD_GATEWAY_NETWORKS": "10.0.0.0/8, nonsense"})


def test_the_embedded_database_and_its_folder_are_private(tmp_path: Path) -> None:
    from bot.storage.database import open_database

    var = tmp_path / "var"
    settings = load_settings({"BOT_VAR_DIR": str(var)})
    database = open_database(settings.database_url)
    assert (var.stat().st_mode & 0o777) == 0o700
    assert (Path(settings.database_url.split("///", 1)[1]).stat().st_mode & 0o777) == 0o600
    assert database.is_sqlite


def test_the_sandbox_command_creates_no_key_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    completed = subprocess.run(
        [sys.executable, "-m", "bot.cli", "sandbox-registry", "--port", "-1"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0  # the port is refused; what matters is what it left
    assert not (tmp_path / "var").exists()


async def test_wired_services_never_print_a_secret(services: Services) -> None:
    from tests.conftest import SANDBOX_TOKEN, TEST_SECRET_KEY

    shown = repr(services) + str(services) + repr(services.keys) + repr(services.engine)
    keys = services.keys
    for hidden in (TEST_SECRET_KEY, SANDBOX_TOKEN, keys.sealing_key.hex(), keys.hashing_key.hex()):
        assert hidden not in shown
    assert repr(keys.sealing_key) not in shown and repr(keys.hashing_key) not in shown
    assert "settings=Settings(" in shown and "secret_key='***'" in shown


def test_webhook_mode_needs_a_public_url_and_a_token(tmp_path: Path) -> None:
    base = {"BOT_VAR_DIR": str(tmp_path), "BOT_SECRET_KEY": "k" * 40}
    token = {"TELEGRAM_BOT_TOKEN": "123456789:AAHsecretTelegramTokenValue123"}
    public = {"PUBLIC_URL": "https://bansos.example.go.id/"}
    assert not load_settings({**base, **token}).telegram_webhook  # polling by default
    assert not load_settings({**base, **public}).telegram_webhook  # no token: no Telegram
    settings = load_settings({**base, **token, **public})
    assert settings.telegram_webhook
    assert settings.public_url == "https://bansos.example.go.id"


@pytest.mark.parametrize(
    "value",
    [
        "bansos.example.go.id",
        "ftp://bansos.example.go.id",
        "http://bansos.example.go.id",  # Telegram calls https only; http for loopback tests
        "https://bansos.example.go.id/?x=1",
        "https://bansos.example.go.id/#top",
        "https://user:pw@bansos.example.go.id",
        "https://bansos.example.go.id:8080",  # not a port Telegram calls
    ],
)
def test_a_public_url_telegram_cannot_call_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="PUBLIC_URL") as caught:
        load_settings({"BOT_VAR_DIR": str(tmp_path), "PUBLIC_URL": value})
    assert "\n" not in str(caught.value) and "pw" not in str(caught.value)


def test_public_urls_that_work(tmp_path: Path) -> None:
    base = {"BOT_VAR_DIR": str(tmp_path)}
    for value in (
        "https://bansos.example.go.id:8443/bot",
        "http://127.0.0.1:8080",
        "http://[::1]:9000",
        "http://localhost:9000/",
    ):
        assert load_settings({**base, "PUBLIC_URL": value}).public_url == value.rstrip("/")
    # A self-hosted Bot API server calls any port.
    own = {**base, "TELEGRAM_API_URL": "http://127.0.0.1:8081"}
    assert load_settings({**own, "PUBLIC_URL": "https://bot.internal:9443"}).public_url


def test_the_webhook_secret_is_derived_alike_everywhere_or_set_and_never_shown(
    tmp_path: Path,
) -> None:
    base = {"BOT_VAR_DIR": str(tmp_path), "BOT_SECRET_KEY": "k" * 40}
    one = load_settings(base).telegram_webhook_secret_token
    assert one == load_settings(dict(base)).telegram_webhook_secret_token  # another instance
    assert one != load_settings({**base, "BOT_SECRET_KEY": "j" * 40}).telegram_webhook_secret_token
    assert 1 <= len(one) <= 256 and one.replace("-", "").replace("_", "").isalnum()
    assert "k" * 40 not in one

    chosen = "Webhook_secret-0123456789"
    settings = load_settings({**base, "TELEGRAM_WEBHOOK_SECRET": chosen})
    assert settings.telegram_webhook_secret_token == chosen
    for shown in (repr(settings), repr(load_settings(base))):
        assert chosen not in shown and one not in shown
    for bad in ("short", "with spaces in it, quite long", "x" * 257, "ünïcödé-secret-value"):
        with pytest.raises(SettingsError, match="TELEGRAM_WEBHOOK_SECRET"):
            load_settings({**base, "TELEGRAM_WEBHOOK_SECRET": bad})
