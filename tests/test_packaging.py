"""A built wheel carries what the bot needs to speak: installed from the wheel alone, away
from the source tree, it serves every language from its own catalogs. Offline: the wheel
is built with the setuptools of this environment (the dev extra brings it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

import bot.i18n
from bot.dialogs import router
from bot.dialogs.model import Input, InputKind
from bot.i18n import SUPPORTED_LANGUAGES, CatalogMissing, load_catalogs, translator
from handlers.ussd import render_screen

ROOT = Path(__file__).resolve().parent.parent
# What the build reads. The build writes build/ and *.egg-info next to its input, so it
# runs on a copy: the work tree stays as it is.
BUILD_INPUTS = ("pyproject.toml", "README.md", "bot", "handlers", "registry_client")

# Runs in the fresh environment: where the packages came from, and each language's
# first USSD screen.
FIRST_SCREENS = """
import json, sys
import bot, handlers, registry_client
from bot.dialogs import router
from bot.dialogs.model import Input, InputKind
from bot.i18n import SUPPORTED_LANGUAGES, load_catalogs
from handlers.ussd import render_screen

def first_screen(language):
    reply = router.step(router.new_state(language), Input(InputKind.START)).reply
    return render_screen(reply).text

load_catalogs()
screens = {language: first_screen(language) for language in SUPPORTED_LANGUAGES}
modules = [module.__file__ for module in (bot, handlers, registry_client)]
print(json.dumps({"prefix": sys.prefix, "modules": modules, "screens": screens}))
"""


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_wheel(into: Path) -> Path:
    source = into / "source"
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    dist = into / "dist"
    run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation",
        "--quiet", "-w", dist, source,
        cwd=into,
    )  # fmt: skip
    (wheel,) = dist.glob("bansos_bot-*.whl")
    return wheel


def first_screen(language: str) -> str:
    reply = router.step(router.new_state(language), Input(InputKind.START)).reply
    assert reply is not None
    return render_screen(reply).text


def test_built_wheel_serves_every_language_from_its_own_catalogs(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(
        sys.executable, "-m", "pip", "--python", python, "install",
        "--no-deps", "--no-index", "--quiet", wheel,
        cwd=tmp_path,
    )  # fmt: skip
    # Third-party packages come from this environment's site-packages, read as a plain
    # path: its .pth files (the editable install of the source tree) are not run there.
    libraries = os.pathsep.join(
        dict.fromkeys(sysconfig.get_path(name) for name in ("purelib", "platlib"))
    )
    env = {**os.environ, "PYTHONPATH": libraries}
    env.pop("PYTHONHOME", None)
    found = json.loads(run(python, "-P", "-c", FIRST_SCREENS, cwd=tmp_path, env=env))

    for module in found["modules"]:
        assert Path(module).is_relative_to(found["prefix"]), module
    assert found["screens"] == {
        language: first_screen(language) for language in SUPPORTED_LANGUAGES
    }
    assert "1 Setuju, cek status" in found["screens"]["id"]
    assert "1 Agree, check status" in found["screens"]["en"]


@pytest.fixture
def fresh_translators() -> Iterator[None]:
    translator.cache_clear()
    yield
    translator.cache_clear()


@pytest.mark.usefixtures("fresh_translators")
def test_an_install_missing_a_catalog_fails_at_start_instead_of_speaking_english(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    indonesian = Path("id") / "LC_MESSAGES" / "messages.po"
    (tmp_path / indonesian).parent.mkdir(parents=True)
    shutil.copy2(bot.i18n.LOCALES_DIR / indonesian, tmp_path / indonesian)
    monkeypatch.setattr(bot.i18n, "LOCALES_DIR", tmp_path)

    with pytest.raises(CatalogMissing, match="'en'"):
        load_catalogs()
