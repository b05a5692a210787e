"""Bounded retries with full-jitter exponential backoff, only for errors that may pass."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from console.errors import AdapterError

T = TypeVar("T")


async def with_retries(
    call: Callable[[], Awaitable[T]],
    retries: int,
    *,
    base_delay_s: float = 0.2,
    max_delay_s: float = 2.0,
) -> T:
    """Run ``call``; on a retryable AdapterError try again up to ``retries`` more times.

    A 400/404/409/422 is never retried: asking again will not change the answer.
    """
    attempt = 0
    while True:
        try:
            return await call()
        except AdapterError as exc:
            if not exc.retryable or attempt >= retries:
                raise
            delay = random.uniform(0, min(max_delay_s, base_delay_s * 2**attempt))
            attempt += 1
            await asyncio.sleep(delay)
