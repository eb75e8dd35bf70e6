"""A throwaway PostgreSQL cluster for the benchmarks, with the bot's schema migrated."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.ussd_status import BenchError


@dataclass
class Cluster:
    folder: Path
    url: str  # of the benchmark's own database
    postmaster_pid: int | None


def start_cluster(database_name: str) -> Cluster:
    """A throwaway cluster on 127.0.0.1 with `database_name` created and migrated."""
    from sqlalchemy.engine import make_url

    from tests.support import postgres

    # Its own top-level folder: as root, the cluster runs as the postgres user, who cannot
    # enter our private work folder.
    folder = Path(tempfile.mkdtemp(prefix="bansos-bench-pg-"))
    try:
        server_url = postgres.start(folder)
    except subprocess.CalledProcessError as error:
        postgres.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)
        output = (error.stderr or b"").decode(errors="replace")
        raise BenchError(f"PostgreSQL did not start:\n{output}") from None
    except BaseException:
        postgres.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    pid_file = folder / "data" / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
    url = make_url(server_url).set(database=database_name).render_as_string(hide_password=False)
    cluster = Cluster(folder, url, postmaster)
    try:
        asyncio.run(_create_and_migrate(server_url, url, database_name))
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    from tests.support import postgres

    postgres.stop(cluster.folder)
    shutil.rmtree(cluster.folder, ignore_errors=True)


async def _create_and_migrate(server_url: str, url: str, database_name: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    from bot.storage.database import open_database
    from bot.storage.migrate import upgrade_to_head

    plain = make_url(server_url).set(drivername="postgresql").render_as_string(False)
    connection = await asyncpg.connect(plain)
    try:
        await connection.execute(f'CREATE DATABASE "{database_name}"')
    finally:
        await connection.close()
    database = open_database(url)
    try:
        await upgrade_to_head(database)
    finally:
        await database.dispose()
