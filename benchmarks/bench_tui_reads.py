"""The reads a view's fetch makes, recorded from the fetch itself, and their timings: a view's
refresh against the slowest of its reads alone (the floor of a fetch that runs them all at
once). Shared by ``bench_tui.py`` (every view) and ``bench_tui_scale.py`` (the Clients view at
N clients)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import importlib
import inspect
import statistics
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

from console.adapters.backends import Backends
from console.errors import ConsoleError

Call = Callable[[], Awaitable[object]]
Fetch = Callable[[Backends], Awaitable[object]]


def reason(exc: ConsoleError, head: int = 160, tail: int = 340) -> str:
    """A failure short enough to print: its start and its end, where VictoriaMetrics puts the
    reason (after repeating the whole query)."""
    text = str(exc)
    return text if len(text) <= head + tail else f"{text[:head]} … {text[-tail:]}"


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e3, 2)


def _note(reads: dict[str, Call], label: str, call: Call, width: int = 90) -> None:
    """``call`` under ``label`` unless the same label is there already; a long label is cut
    to ``width``, with a digest of the whole so that two cut alike stay apart."""
    if len(label) > width:
        label = f"{label[: width - 9]}…{zlib.crc32(label.encode()):08x}"
    reads.setdefault(label, call)


class _Noting:
    """An adapter whose coroutine methods note each call (a label and the call to repeat it)
    in ``reads`` before making it; ``texts`` gets each call's whole first string argument
    (a query), which a label may cut."""

    def __init__(self, inner: object, name: str, reads: dict[str, Call], texts: list[str]) -> None:
        self._inner, self._name, self._reads, self._texts = inner, name, reads, texts

    def __getattr__(self, attr: str) -> Any:
        method = getattr(self._inner, attr)
        if not inspect.iscoroutinefunction(method):
            return method
        reads, texts, label = self._reads, self._texts, f"{self._name}.{attr}"

        async def noted(*args: object, **kwargs: object) -> object:
            text = next((a for a in args if isinstance(a, str)), "")
            texts.append(text)
            _note(reads, f"{label} {text}".strip(), functools.partial(method, *args, **kwargs))
            return await method(*args, **kwargs)

        return noted


@contextlib.contextmanager
def _threads_noted(reads: dict[str, Call]) -> Iterator[None]:
    """``asyncio.to_thread`` noting each blocking read a view hands to a thread."""
    real = asyncio.to_thread

    async def noted(func: Callable[..., object], /, *args: object, **kwargs: object) -> object:
        name = getattr(func, "__qualname__", repr(func))
        _note(reads, f"thread.{name}", lambda: real(func, *args, **kwargs))
        return await real(func, *args, **kwargs)

    setattr(asyncio, "to_thread", noted)  # noqa: B010 - the views call asyncio.to_thread
    try:
        yield
    finally:
        setattr(asyncio, "to_thread", real)  # noqa: B010


def view_fetch(name: str) -> Fetch:
    """The view's ``console.views.<name>.fetch_<name>``."""
    module = importlib.import_module(f"console.views.{name}")
    return cast(Fetch, getattr(module, f"fetch_{name}"))


@dataclasses.dataclass
class Recorded:
    reads: dict[str, Call]
    """Every read one fetch made, each to be repeated alone."""
    queries: list[str]
    """The whole text of every metrics-engine query among them."""
    failed: str | None
    """The fetch's failure if it failed (the reads made before it are still recorded)."""


async def recorded_reads(sources: Backends, fetch: Fetch) -> Recorded:
    """Every read one ``fetch(sources)`` makes, each to be repeated alone on ``sources``."""
    reads: dict[str, Call] = {}
    queries: list[str] = []
    others: list[str] = []

    def noting(inner: object, name: str) -> Any:
        return _Noting(inner, name, reads, queries if name == "prometheus" else others)

    spy = Backends(
        sources.settings,
        metrics=sources.metrics,
        prometheus=noting(sources.prometheus, "prometheus"),
        alertmanager=noting(sources.alertmanager, "alertmanager"),
        registry=noting(sources.registry, "registry"),
        policy=noting(sources.policy, "policy"),
        gateway_state=noting(sources.gateway_state, "gateway_state"),
    )
    try:
        with _threads_noted(reads):
            await fetch(spy)
    except ConsoleError as exc:
        return Recorded(reads, [q for q in queries if q], reason(exc))
    return Recorded(reads, [q for q in queries if q], None)


async def _timed(call: Call) -> float:
    start = time.perf_counter()
    await call()
    return time.perf_counter() - start


@dataclasses.dataclass
class Timing:
    times: list[float]
    """Of the calls that answered."""
    tries: int
    error: str | None
    """How many calls failed (warm-up ones included) and why the first did."""

    @property
    def median_ms(self) -> float | None:
        return median_ms(self.times) if self.times else None

    @property
    def answered(self) -> str:
        return f"{len(self.times)}/{self.tries}"


async def interleaved(
    whole: Call, reads: dict[str, Call], times: int, warmup: int = 2
) -> tuple[Timing, dict[str, Timing]]:
    """``times`` timings of ``whole`` and of each read alone, after ``warmup`` rounds, taken in
    turn so that all see the same noise; a call that fails (the engine timed out, a limit) is
    counted, not timed."""
    calls = {**reads, "": whole}
    answered: dict[str, list[float]] = {name: [] for name in calls}
    failures: dict[str, list[str]] = {name: [] for name in calls}
    for i in range(warmup + times):
        for name, call in calls.items():
            try:
                took = await _timed(call)
            except ConsoleError as exc:
                failures[name].append(reason(exc))
                continue
            if i >= warmup:
                answered[name].append(took)
    timings = {
        name: Timing(
            answered[name],
            times,
            f"{len(failures[name])} failed, first: {failures[name][0]}" if failures[name] else None,
        )
        for name in calls
    }
    return timings.pop(""), timings


def against_slowest(refresh: Timing, alone: dict[str, Timing]) -> dict[str, Any]:
    """A refresh's median against the slowest of its reads alone, and their sum."""
    medians = {name: t.median_ms for name, t in alone.items() if t.median_ms is not None}
    report: dict[str, Any] = {
        "refresh_median_ms": refresh.median_ms,
        "refresh_answered": refresh.answered,
    }
    if medians:
        slowest = max(medians, key=lambda name: medians[name])
        report["slowest_alone"] = slowest
        report["slowest_alone_median_ms"] = medians[slowest]
        report["sum_alone_median_ms"] = round(sum(medians.values()), 2)
        if refresh.median_ms is not None and medians[slowest] > 0:
            ratio = refresh.median_ms / medians[slowest]
            report["ratio_refresh_vs_slowest_alone"] = round(ratio, 2)
    report["alone_median_ms"] = medians
    errors = {name: t.error for name, t in [*alone.items(), ("refresh", refresh)] if t.error}
    if errors:
        report["errors"] = errors
    return report
