"""A replay from request to verdict, as a stream of events (``ReplayStarted``, one
``BatchDone`` per batch, ``ReplayFinished``). The CLI draws a progress bar from it; a caller
cancels by stopping the iteration (``aclose``) or cancelling its task, and the generator closes
what it opened."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack

from console import model_signing
from console.adapters.backends import Backends
from console.adapters.open_inference import OpenInferenceClient
from console.config import Settings
from console.detectors.squeezing import SQUEEZERS, FeatureSqueezer
from console.replay.engine import Outputs, run_batches
from console.replay.model import (
    DEFAULT_MODEL,
    ReplayEvent,
    ReplayFinished,
    ReplayRequest,
    ReplayResult,
    ReplayStarted,
)
from console.replay.runners import LocalRunner, RemoteRunner, Runner
from console.replay.scoring import summarise
from console.replay.selection import select_samples
from console.replay.versions import record_trust, resolve_with_robustness


def squeezer_of(settings: Settings) -> FeatureSqueezer:
    """The gateway's squeezers, so replayed scores compare with the stored detector scores."""
    return FeatureSqueezer(tuple((name, SQUEEZERS[name]) for name in settings.detectors.squeezers))


async def replay(
    settings: Settings,
    request: ReplayRequest,
    *,
    backends: Backends | None = None,
) -> AsyncGenerator[ReplayEvent, None]:
    """Select, resolve, prepare, run, score. Without ``backends``, clients are made from
    ``settings`` (and closed at the end); errors are ConsoleErrors."""
    async with AsyncExitStack() as stack:
        if backends is None:
            backends = Backends(settings)
            stack.push_async_callback(backends.aclose)
        registry = backends.registry
        alerts = backends.alertmanager if request.alert is not None else None
        samples = await select_samples(settings.samples.path, request, alerts)
        model = samples.filter.model or DEFAULT_MODEL
        refs, judged = await resolve_with_robustness(
            registry, model, request.versions, settings.robustness, record_trust(settings)
        )
        runner: Runner
        if request.endpoint is not None:
            options = settings.models.endpoint_options(request.endpoint)
            client = OpenInferenceClient.connect(
                request.endpoint, request.timeout_s, options=options
            )
            runner = RemoteRunner(client, model)
        else:
            signing = model_signing.signing_policy(settings)
            runner = await LocalRunner.prepare(registry, model, refs, signing=signing)
        stack.push_async_callback(runner.aclose)
        batch_size = request.batch_size or runner.default_batch
        yield ReplayStarted(model, runner.backend, samples, refs, batch_size)
        started = time.perf_counter()
        outputs = Outputs(refs, len(samples), squeezer_of(settings) if request.squeeze else None)
        async for done in run_batches(samples.x, runner, outputs, batch_size):
            yield done
        runs = outputs.runs()
        # Quoted once the registry has something to say of one of them (none evaluated: the
        # verdict stays as it was).
        said = any(found.problem != "not evaluated" for found in judged.values())
        quotes = {version: found.quote() for version, found in judged.items()} if said else None
        flips, summary = summarise(samples, runs, settings.detectors.flag_threshold, quotes)
        yield ReplayFinished(
            ReplayResult(
                model=model,
                backend=runner.backend,
                samples=samples,
                runs=runs,
                flips=flips,
                summary=summary,
                elapsed_s=time.perf_counter() - started,
            )
        )


async def replay_result(
    settings: Settings,
    request: ReplayRequest,
    *,
    backends: Backends | None = None,
) -> ReplayResult:
    """The whole replay, without progress (scripts, tests, the benchmark)."""
    async for event in replay(settings, request, backends=backends):
        if isinstance(event, ReplayFinished):
            return event.result
    raise AssertionError("a replay always ends with ReplayFinished")
