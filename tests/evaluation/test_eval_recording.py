"""Recording an evaluation (``recording.record_evaluation``) on the session lab's real MLflow:
the run's metrics go in one ``runs/log-batch`` call, the version's figure tags at most
``TAG_CONCURRENCY`` at once, and the record and its signature only after every figure tag
has been written; a figure tag that fails leaves the version without a new record."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fleet_support import failing_path, fleet_env, record, settings_of
from support import LabHandle

from console.adapters.mlflow import MlflowRegistry
from console.config import Settings
from console.errors import ConsoleError
from console.evaluation import recording
from console.lab.seed import SeededModel
from console.robustness import RECORD_TAG, TAG_PREFIX, RobustnessRecord
from console.robustness_seal import SIGNATURE_TAG


def _record(settings: Settings, url: str, rec: RobustnessRecord) -> RobustnessRecord:
    async def write() -> RobustnessRecord:
        registry = MlflowRegistry.connect(url, 10.0)
        try:
            key = recording.signing_key(settings)
            return await recording.record_evaluation(registry, rec, {"test": True}, key)
        finally:
            await registry.aclose()

    return asyncio.run(write())


def _tags(settings: Settings, model: str, version: str) -> dict[str, str]:
    async def read() -> dict[str, str]:
        registry = MlflowRegistry.connect(settings.mlflow.url, 10.0)
        try:
            found = await registry.get_version(model, version)
            assert found is not None
            return found.tags
        finally:
            await registry.aclose()

    return asyncio.run(read())


def test_metrics_in_one_batch_and_the_record_written_after_every_figure_tag(
    lab: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    settings = settings_of(fleet_env(lab, tmp_path, seeded_model.name))
    rec = record(seeded_model, "2", fgsm=0.33)
    seen: list[bytes] = []
    paths: list[str] = []

    class Counting(MlflowRegistry):
        async def _call(self, method: str, path: str, **kwargs: object) -> object:
            paths.append(path)
            return await super()._call(method, path, **kwargs)

    async def write(url: str) -> RobustnessRecord:
        registry = Counting(MlflowRegistry.connect(url, 10.0)._client)
        try:
            key = recording.signing_key(settings)
            return await recording.record_evaluation(registry, rec, {"test": True}, key)
        finally:
            await registry.aclose()

    with failing_path(settings.mlflow.url, "/model-versions/set-tag", when=b"\0", seen=seen) as url:
        written = asyncio.run(write(url))

    assert paths.count("/runs/log-batch") == 1
    assert "/runs/log-metric" not in paths
    expected = rec.model_copy(update={"run_id": written.run_id}).signed_tags(
        recording.signing_key(settings)
    )
    order = [json.loads(body)["key"] for body in seen]
    assert sorted(order) == sorted(expected)  # one set-tag call per tag
    assert order[-2:] == [RECORD_TAG, SIGNATURE_TAG]  # after every figure tag returned
    tags = _tags(settings, seeded_model.name, "2")
    assert tags[RECORD_TAG] == expected[RECORD_TAG]
    assert tags[TAG_PREFIX + "fgsm.adversarial_success_rate"] == "0.3300"


def test_a_figure_tag_that_fails_leaves_the_old_record(
    lab: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    settings = settings_of(fleet_env(lab, tmp_path, seeded_model.name))
    first = record(seeded_model, "2", fgsm=0.2)
    kept = _record(settings, settings.mlflow.url, first)
    before = _tags(settings, seeded_model.name, "2")[RECORD_TAG]

    broken = f'"{TAG_PREFIX}detector_fpr"'.encode()  # that tag's set-tag call only
    with (
        failing_path(settings.mlflow.url, "/model-versions/set-tag", when=broken) as url,
        pytest.raises(ConsoleError) as caught,
    ):
        _record(settings, url, record(seeded_model, "2", fgsm=0.5))
    assert "\n" not in str(caught.value)
    tags = _tags(settings, seeded_model.name, "2")
    assert tags[RECORD_TAG] == before  # the record (what is read back) is still the first
    assert json.loads(tags[RECORD_TAG])["run_id"] == kept.run_id
    # The other figure tags, in flight beside the failed one, were written all the same.
    assert tags[TAG_PREFIX + "fgsm.adversarial_success_rate"] == "0.5000"
