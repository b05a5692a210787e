"""One version the lab cannot evaluate (tagged as a seed version by anyone who can write the
registry, its sha256 tag naming other bytes) neither stops the seed evaluation `lab up` runs
nor gets a record; the real seed versions are still evaluated."""

from __future__ import annotations

import asyncio

from support import LabHandle

from console.adapters.mlflow import MlflowRegistry
from console.lab.seed import SeededModel
from console.lab.seed_eval import ensure_seed_evaluations
from console.robustness import RECORD_TAG


async def _plant(url: str, model: str) -> str:
    registry = MlflowRegistry.connect(url, 10.0)
    try:
        seed = await registry.get_version(model, "2")
        assert seed is not None
        planted = await registry.create_version(
            model,
            seed.source,
            seed.run_id,
            tags={"model_kind": "mlp", "onnx_sha256": "0" * 64},
        )
        return planted.version
    finally:
        await registry.aclose()


async def _tags(url: str, model: str, version: str) -> dict[str, str]:
    registry = MlflowRegistry.connect(url, 10.0)
    try:
        found = await registry.get_version(model, version)
        assert found is not None
        return found.tags
    finally:
        await registry.aclose()


def test_a_version_it_cannot_evaluate_is_logged_and_skipped(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    url, model = lab.settings.mlflow.url, seeded_model.name
    planted = asyncio.run(_plant(url, model))
    done = {e.version: e for e in ensure_seed_evaluations(lab.settings, model)}
    assert done["1"].evaluated and done["2"].evaluated
    assert not done[planted].evaluated
    assert "sha256" in done[planted].error
    assert RECORD_TAG not in asyncio.run(_tags(url, model, planted))
