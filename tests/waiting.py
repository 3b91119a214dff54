"""Waiting in a test for something another task or process makes true."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    """Returns once `condition()` is true (checked every 50 ms); fails the test after `timeout_s`."""
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s")
