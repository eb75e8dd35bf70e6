"""The event loop the long-running commands run on: uvloop where it is installed.

uvloop (by asyncpg's authors) runs the same asyncio code with a loop written in Cython;
on the USSD hot path it takes a good part of the CPU the standard loop spends on sockets
and callbacks. Where it has no build (Windows, PyPy), the standard loop serves unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None for asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on uvloop when it is there."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
