"""The part one `serve` process plays: alone, or one worker of a group that shares a port
(`serve --workers N`, see bot/process_group.py), and the worker's side of the group's
protocol with its supervisor."""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import dataclass

# A worker's stdout is its supervisor's control channel: this line once it serves, or the
# one line saying why it could not start.
READY_LINE = "ready"


@dataclass(frozen=True, slots=True)
class ProcessRole:
    """Where a `serve` process stands. Alone (the default) it does everything. In a group
    of `count` workers on one port, worker 0 is the primary: it alone runs what must not
    run once per process (Telegram long polling, registering a webhook, the background
    workers); every worker answers HTTP."""

    index: int = 0
    count: int = 1
    # The group's sandbox registry, started once by the supervisor; None: start one here
    # when no REGISTRY_URL is configured.
    sandbox_url: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"worker {self.index} of {self.count} does not exist")

    @property
    def is_primary(self) -> bool:
        return self.index == 0

    @property
    def in_group(self) -> bool:
        """One of several processes: share the port (SO_REUSEPORT), print no welcome."""
        return self.count > 1

    def telegram_send_rate(self, per_bot: float, *, webhook: bool) -> float:
        """This process's share of the messages a second Telegram allows the bot. With a
        webhook every worker replies, so each sends 1/count of it; a poller is alone."""
        return per_bot / self.count if webhook else per_bot


ALONE = ProcessRole()


def report_ready() -> None:
    """Tell the supervisor this worker serves; the supervisor prints the welcome, once."""
    print(READY_LINE, flush=True)


def stop_when_orphaned() -> None:
    """Stop gracefully (SIGTERM to ourselves) once stdin closes. The supervisor holds the
    other end of that pipe, so a worker never outlives it, even one killed with SIGKILL."""

    def wait_for_eof() -> None:
        # os.read, not sys.stdin: a daemon thread blocked in a buffered read would abort
        # the interpreter's shutdown.
        while os.read(stdin, 4096):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    stdin = sys.stdin.fileno()

    threading.Thread(target=wait_for_eof, name="lifeline", daemon=True).start()
