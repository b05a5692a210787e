"""Running a view's independent reads at once.

``all_at_once`` starts every read given to it and waits for all of them; the first failure is
raised as itself (not in an ``ExceptionGroup``: the TUI's refresh catches ``ConsoleError`` and
shows the view stale, with the reason), and the reads still running are cancelled rather than
left behind. It does not use ``asyncio.TaskGroup``: on Python 3.11 a group whose task failed
leaves the task around it counted as being cancelled (``Task.cancelling()`` stays 1), which
code that consults the count (anyio's cancel scopes, under httpx) may act on.
``settled`` keeps a read's ``ConsoleError`` as a value, for a source whose failure is shown
beside the data (the policy store, the registry) instead of failing the whole view.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from console.errors import ConsoleError

T = TypeVar("T")


class Reads:
    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any]] = []

    def create_task(self, call: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(call)
        self.tasks.append(task)
        return task


@asynccontextmanager
async def all_at_once() -> AsyncIterator[Reads]:
    reads = Reads()
    try:
        yield reads
        await asyncio.gather(*reads.tasks)
    finally:
        for task in reads.tasks:
            task.cancel()  # no-op for those done
        if reads.tasks:
            await asyncio.wait(reads.tasks)


async def settled(call: Callable[[], Awaitable[T]]) -> T | ConsoleError:
    """``call()``'s result, or the ConsoleError it raised (anything else still raises). A
    callable, not a coroutine: a read cancelled before it started then leaves no coroutine
    behind that was never awaited."""
    try:
        return await call()
    except ConsoleError as exc:
        return exc
