"""Background work whose outcome nobody awaits (best-effort publishes)."""

from __future__ import annotations

import asyncio
from typing import Coroutine

_running: set[asyncio.Task[None]] = set()


def spawn(coroutine: Coroutine[object, object, None]) -> None:
    """Runs a coroutine in the background, keeping a reference until it ends."""
    task = asyncio.ensure_future(coroutine)
    _running.add(task)
    task.add_done_callback(_running.discard)


async def settle() -> None:
    """Waits for what runs in the background now."""
    if _running:
        await asyncio.gather(*list(_running), return_exceptions=True)
