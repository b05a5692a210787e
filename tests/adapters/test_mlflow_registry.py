"""The registry adapter's write calls (experiments, runs, artifact upload, models, versions)
against the session lab's real MLflow: each round trip reads back what it made, and each
refusal is one ConsoleError line, never a raw httpx exception."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from support import LabHandle, free_port

from console.adapters.mlflow import MlflowRegistry
from console.errors import BackendResponseError, BackendUnavailable, ConsoleError, ParameterError


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def one_line(caught: pytest.ExceptionInfo[ConsoleError]) -> str:
    text = str(caught.value)
    assert text.strip() and "\n" not in text, text
    return text


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
async def experiment_id(registry: MlflowRegistry) -> str:
    created = await registry.create_experiment(unique("aml-test-adapter"))
    assert created is not None
    return created


async def test_an_experiment_is_created_once_and_found_by_name(registry: MlflowRegistry) -> None:
    name = unique("aml-test-adapter")
    assert await registry.get_experiment_id(name) is None
    created = await registry.create_experiment(name)
    assert created is not None and created.isdigit()
    assert await registry.get_experiment_id(name) == created
    assert await registry.create_experiment(name) is None  # exists already


async def test_an_experiment_without_a_name_is_refused_in_one_line(
    registry: MlflowRegistry,
) -> None:
    with pytest.raises(BackendResponseError) as caught:
        await registry.create_experiment("")
    assert "INVALID_PARAMETER_VALUE" in one_line(caught)


async def test_a_finished_run_is_found_by_its_tags_status_and_metric(
    registry: MlflowRegistry, experiment_id: str
) -> None:
    marker = uuid.uuid4().hex
    started = now_ms()
    run = await registry.create_run(experiment_id, "adapter-test", started, tags={"m": marker})
    assert run.run_id and run.experiment_id == experiment_id and run.status == "RUNNING"
    assert run.artifact_uri.startswith("mlflow-artifacts:/") and run.tags["m"] == marker

    await registry.log_metric(run.run_id, "accuracy", 0.5, started)
    finished = f"tags.m = '{marker}' and attributes.status = 'FINISHED'"
    assert await registry.search_runs([experiment_id], finished) == []
    await registry.update_run(run.run_id, "FINISHED", now_ms())
    found = await registry.search_runs([experiment_id], f"{finished} and metrics.accuracy = 0.5")
    assert [(r.run_id, r.status, r.tags["m"]) for r in found] == [(run.run_id, "FINISHED", marker)]


async def test_run_search_orders_and_limits(registry: MlflowRegistry, experiment_id: str) -> None:
    older = await registry.create_run(experiment_id, "older", now_ms() - 60_000)
    newer = await registry.create_run(experiment_id, "newer", now_ms())
    # Oldest first: MLflow's default order is the other way round.
    oldest_first = ["attributes.start_time ASC"]
    both = await registry.search_runs([experiment_id], order_by=oldest_first)
    assert [r.run_id for r in both] == [older.run_id, newer.run_id]
    one = await registry.search_runs([experiment_id], max_results=1, order_by=oldest_first)
    assert [r.run_id for r in one] == [older.run_id]


async def test_run_calls_on_what_does_not_exist_are_one_line(registry: MlflowRegistry) -> None:
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "create_run": lambda: registry.create_run("987654321", "nowhere", now_ms()),
        "log_metric": lambda: registry.log_metric("no-such-run", "accuracy", 1.0, now_ms()),
        "update_run": lambda: registry.update_run("no-such-run", "FINISHED", now_ms()),
    }
    for what, call in calls.items():
        with pytest.raises(BackendResponseError) as caught:
            await call()
        assert "RESOURCE_DOES_NOT_EXIST" in one_line(caught), what
        assert caught.value.status == 404


async def test_a_bad_run_filter_is_refused_in_one_line(
    registry: MlflowRegistry, experiment_id: str
) -> None:
    with pytest.raises(BackendResponseError) as caught:
        await registry.search_runs([experiment_id], "tags.m ==== 1")
    assert "INVALID_PARAMETER_VALUE" in one_line(caught)


async def test_a_logged_artifact_becomes_a_version_that_reads_back(
    registry: MlflowRegistry, experiment_id: str
) -> None:
    run = await registry.create_run(experiment_id, "artifact", now_ms())
    content = uuid.uuid4().bytes * 1000
    source = f"{run.artifact_uri}/model.onnx"
    await registry.log_artifact(source, content)

    name = unique("aml-test-adapter")
    model = await registry.create_model(name, "adapter test", tags={"aml.test": "true"})
    assert model is not None and (model.name, model.description) == (name, "adapter test")
    assert (await registry.require_model(name)).description == "adapter test"
    assert await registry.create_model(name) is None  # exists already

    sha = hashlib.sha256(content).hexdigest()
    made = await registry.create_version(name, source, run.run_id, "one", tags={"sha": sha})
    assert (made.name, made.version, made.source, made.run_id) == (name, "1", source, run.run_id)
    assert made.tags == {"sha": sha}
    back = await registry.get_version(name, "1")
    assert back is not None and back.tags == {"sha": sha} and back.source == source
    assert await registry.download_artifact(name, "1") == content

    second = await registry.create_version(name, source, run.run_id)
    assert second.version == "2"
    assert [v.version for v in await registry.list_versions(name)] == ["1", "2"]
    assert len(await registry.list_versions(name, max_results=1)) == 1


async def test_a_version_of_a_missing_model_is_refused_in_one_line(
    registry: MlflowRegistry, experiment_id: str
) -> None:
    run = await registry.create_run(experiment_id, "orphan", now_ms())
    with pytest.raises(BackendResponseError) as caught:
        await registry.create_version(
            unique("aml-test-missing"), f"{run.artifact_uri}/model.onnx", run.run_id
        )
    assert "RESOURCE_DOES_NOT_EXIST" in one_line(caught)
    with pytest.raises(ParameterError) as bad_name:
        await registry.create_model("no spaces allowed")
    one_line(bad_name)


async def test_artifacts_outside_the_proxy_or_with_a_bad_path_are_one_line(
    registry: MlflowRegistry, experiment_id: str
) -> None:
    with pytest.raises(BackendResponseError, match="--serve-artifacts") as not_proxied:
        await registry.log_artifact("file:///tmp/model.onnx", b"x")
    one_line(not_proxied)
    run = await registry.create_run(experiment_id, "bad-path", now_ms())
    with pytest.raises(BackendResponseError) as bad_path:
        await registry.log_artifact(f"{run.artifact_uri}/%2E%2E/%2E%2E/model.onnx", b"x")
    assert "Invalid path" in one_line(bad_path)


async def test_an_unreachable_registry_is_one_retryable_line() -> None:
    registry = MlflowRegistry.connect(f"http://127.0.0.1:{free_port()}", 2.0)
    try:
        with pytest.raises(BackendUnavailable) as caught:
            await registry.create_experiment(unique("aml-test-adapter"))
        assert "cannot connect" in one_line(caught) and caught.value.retryable
    finally:
        await registry.aclose()


async def test_only_mlflow_itself_says_not_found_or_already_exists(lab: LabHandle) -> None:
    """A 404 page from something else at the URL (here the lab's real Alertmanager) is an
    error naming its status, never None ("not found") nor "already exists"."""
    registry = MlflowRegistry.connect(lab.settings.alertmanager.url, 5.0)
    creates: list[Callable[[], Awaitable[object]]] = [
        lambda: registry.create_experiment("x"),
        lambda: registry.create_model("x"),
    ]
    try:
        with pytest.raises(BackendResponseError) as missing:
            await registry.get_experiment_id("anything")
        assert "HTTP 404" in one_line(missing)
        for create in creates:
            with pytest.raises(BackendResponseError) as refused:
                await create()
            assert "HTTP 404" in one_line(refused)
    finally:
        await registry.aclose()


async def test_a_foreign_400_page_is_not_already_exists() -> None:
    """The same for a 400 page without MLflow's error code, which no real server here gives
    for these paths (so a stand-in answers it)."""

    def foreign(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text="<html>\n<h1>Bad request</h1>\n</html>")

    transport = httpx.MockTransport(foreign)
    registry = MlflowRegistry(httpx.AsyncClient(base_url="http://mlflow.test", transport=transport))
    creates: list[Callable[[], Awaitable[object]]] = [
        lambda: registry.create_experiment("x"),
        lambda: registry.create_model("x"),
    ]
    try:
        for create in creates:
            with pytest.raises(BackendResponseError) as refused:
                await create()
            assert "HTTP 400" in one_line(refused)
    finally:
        await registry.aclose()
