"""A throwaway PostgreSQL cluster for tests: initdb into a temporary folder, listen on
127.0.0.1 on a free port, fsync off. Used by the test fixtures and by .ci/run:

    python -m tests.support.postgres start DIR   # prints the server's URL
    python -m tests.support.postgres stop DIR
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

SUPERUSER = "postgres"


def find_bindir() -> Path:
    """The folder holding initdb and pg_ctl (PostgreSQL's own, not Debian's wrappers)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if Path(folder, "initdb").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: install them (apt-get install postgresql) "
        "or point TEST_POSTGRES_URL at a server"
    )


def _as_cluster_owner(command: list[str]) -> list[str]:
    # initdb refuses to run as root; the postgres system user owns the cluster then.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _owner() -> str:
    return "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")


def start(folder: Path) -> str:
    """Create and start a cluster in `folder`; return its asyncpg URL."""
    bindir = find_bindir()
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        folder.chmod(0o700)
    subprocess.run(
        _as_cluster_owner(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = (
        f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        _as_cluster_owner(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(folder / "server.log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    (folder / "port").write_text(str(port))
    return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{port}/postgres"


def stop(folder: Path) -> None:
    data = folder / "data"
    if not data.exists():
        return
    subprocess.run(
        _as_cluster_owner(
            [str(find_bindir() / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
        ),
        check=False,
        capture_output=True,
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m tests.support.postgres start|stop DIR", file=sys.stderr)
        return 2
    action, folder = argv[0], Path(argv[1]).resolve()
    if action == "start":
        print(start(folder))
    else:
        stop(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
