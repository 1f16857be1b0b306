"""Waiting for something a background task or another process does, with a deadline instead of a hang."""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout_s: float = 10.0, what: str = "") -> None:
    """Return once `check()` is true; fail after `timeout_s`. `check` may be sync (run off the event loop, so it may
    block on another thread's lock) or async."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    for _ in itertools.count():
        result = check() if inspect.iscoroutinefunction(check) else await asyncio.to_thread(check)
        if await result if inspect.isawaitable(result) else result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout_s} s: {what or check}")
        await asyncio.sleep(0.05)
