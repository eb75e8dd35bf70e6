"""deploy/docker-compose.yml brings up PostgreSQL, the sandbox and two bot instances
behind nginx, and a phone can be served through the proxy by both instances.

Runs only where Docker with the Compose plugin and a running daemon are present (it builds
the image, which takes minutes); elsewhere it is skipped with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "deploy" / "docker-compose.yml"
PROXY = "http://127.0.0.1:8080"
GATEWAY_SECRET = "demo-gateway-secret-change-me"
UP_TIMEOUT_S = 900


def _docker_compose_missing() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    for probe, what in ((["docker", "compose", "version"], "the Compose plugin"),
                        (["docker", "info"], "a running Docker daemon")):  # fmt: skip
        done = subprocess.run(probe, capture_output=True, check=False, timeout=60)
        if done.returncode != 0:
            return f"{what} is not available"
    return None


MISSING = _docker_compose_missing()
pytestmark = [
    pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
    pytest.mark.timeout(UP_TIMEOUT_S + 300),
]


def _compose(project: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "-p", project, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def _ussd(session: str, phone: str, text: str) -> str:
    body = urllib.parse.urlencode(
        {"sessionId": session, "serviceCode": "*123#", "phoneNumber": phone, "text": text}
    ).encode()
    request = urllib.request.Request(
        f"{PROXY}/ussd", data=body, headers={"X-Gateway-Secret": GATEWAY_SECRET}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(answer.read().decode())


def _wait_for_proxy(deadline: float) -> None:
    while True:
        try:
            with urllib.request.urlopen(f"{PROXY}/healthz", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_two_instances_behind_the_proxy_serve_phones() -> None:
    project = f"bansos-test-{uuid.uuid4().hex[:8]}"
    try:
        up = _compose(project, "up", "--detach", "--build", "--wait", timeout=UP_TIMEOUT_S)
        assert up.returncode == 0, up.stderr[-2000:]
        _wait_for_proxy(time.monotonic() + 60)
        for n in range(12):
            phone = f"+62812000{n:05d}"
            assert _ussd(f"compose-{n}", phone, "").startswith("CON ")  # consent screen
            assert _ussd(f"compose-{n}", phone, "1").startswith("CON ")  # asks the NIK
        # Without the secret the proxy passes the request on and the bot refuses it.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(
                urllib.request.Request(f"{PROXY}/ussd", data=b"text="), timeout=10
            )
        assert refused.value.code == 403
        logs = _compose(project, "logs", "proxy").stdout
        served_by = {line.split("upstream=")[1].split()[0] for line in logs.splitlines()
                     if "POST /ussd" in line and "upstream=" in line}  # fmt: skip
        assert len(served_by) == 2, served_by  # both instances answered
    finally:
        _compose(project, "down", "--volumes", "--remove-orphans", timeout=300)
