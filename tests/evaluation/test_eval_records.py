"""Records as the registry holds them: one copied from another version (another artifact's
sha256, its signature intact) is not usable, and the lab's seed evaluation, which `lab up`
runs, evaluates exactly the versions without a usable record and skips the others."""

from __future__ import annotations

import httpx
from eval_support import API, robustness_tags, runs_of, version_tags
from support import LabHandle

from console.evaluation.recording import trusted_keys
from console.lab.seed import SeededModel
from console.lab.seed_eval import ensure_seed_evaluations
from console.robustness import recorded_robustness
from console.robustness_seal import SIGNATURE_TAG


def _usable(lab: LabHandle, model: str, version: str) -> tuple[bool, str]:
    tags = version_tags(lab.settings.mlflow.url, model, version)
    found = recorded_robustness(tags, tags.get("onnx_sha256", ""), trusted_keys(lab.settings))
    return found.usable, found.problem


def _set_tags(url: str, model: str, version: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        httpx.post(
            f"{url}{API}/model-versions/set-tag",
            json={"name": model, "version": version, "key": key, "value": value},
            timeout=10,
        ).raise_for_status()


def test_lab_up_recorded_the_seed_versions(lab: LabHandle) -> None:
    """The session lab came up through services.up: its seed model's versions are evaluated."""
    name = lab.settings.lab.seed_model
    body = httpx.get(
        f"{lab.settings.mlflow.url}{API}/model-versions/search",
        params={"filter": f"name='{name}'"},
        timeout=10,
    ).json()
    seeds = [
        v["version"]
        for v in body["model_versions"]
        if {t["key"]: t["value"] for t in v.get("tags", [])}.get("model_kind") in ("logreg", "mlp")
    ]
    assert len(seeds) >= 2
    for version in seeds:
        assert _usable(lab, name, version) == (True, "")


def test_seed_evaluation_is_idempotent_and_a_copied_record_is_not_usable(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    url, model = lab.settings.mlflow.url, seeded_model.name
    assert _usable(lab, model, "1") == (False, "not evaluated")
    first = ensure_seed_evaluations(lab.settings, model)
    assert [(e.version, e.evaluated) for e in first] == [("1", True), ("2", True)]
    for version in ("1", "2"):
        assert _usable(lab, model, version) == (True, "")
    tags_1 = version_tags(url, model, "1")
    assert tags_1["aml.robustness.onnx_sha256"] == seeded_model.sha256["1"]
    assert f'"samples":{lab.settings.robustness.samples}' in tags_1["aml.robustness.record"]
    assert len(runs_of(url, model)) == 2

    again = ensure_seed_evaluations(lab.settings, model)
    assert [(e.version, e.evaluated) for e in again] == [("1", False), ("2", False)]
    assert len(runs_of(url, model)) == 2

    # A registry writer copies version 1's record (and its valid signature) onto version 2.
    _set_tags(url, model, "2", robustness_tags(tags_1))
    assert version_tags(url, model, "2")[SIGNATURE_TAG] == tags_1[SIGNATURE_TAG]
    usable, problem = _usable(lab, model, "2")
    assert not usable
    assert problem.startswith("measured another artifact (sha256 " + seeded_model.sha256["1"][:12])

    # The next lab up evaluates version 2 again and leaves version 1 alone.
    third = ensure_seed_evaluations(lab.settings, model)
    assert [(e.version, e.evaluated) for e in third] == [("1", False), ("2", True)]
    assert _usable(lab, model, "2") == (True, "")
    tags_2 = version_tags(url, model, "2")
    assert tags_2["aml.robustness.onnx_sha256"] == seeded_model.sha256["2"]
    assert version_tags(url, model, "1")["aml.robustness.run_id"] == tags_1["aml.robustness.run_id"]
    assert len(runs_of(url, model)) == 3


def test_a_record_with_figures_changed_after_signing_is_not_trusted(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    url, model = lab.settings.mlflow.url, seeded_model.name
    ensure_seed_evaluations(lab.settings, model)
    record = version_tags(url, model, "1")["aml.robustness.record"]
    forged = record.replace('"clean_accuracy":0.', '"clean_accuracy":0.9', 1)
    assert forged != record
    _set_tags(url, model, "1", {"aml.robustness.record": forged})
    usable, problem = _usable(lab, model, "1")
    assert not usable and problem == "record not trusted: its signature does not verify"
