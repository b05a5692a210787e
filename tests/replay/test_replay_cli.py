"""`aml-console replay` against the session lab's real MLflow registry (real ONNX artifacts) and a
sample store of real and FGSM-perturbed digits; every figure checked against onnxruntime called
directly on the same arrays."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from replay_stack import ADVERSARIAL, CLEAN, OLD, UNLABELLED, Store, fill_store
from replay_support import direct, invoke
from support import LabHandle, cli_env

from console.lab.seed import SeededModel

ALL = CLEAN + ADVERSARIAL + UNLABELLED + OLD


def _replay(env: dict[str, str], *args: str) -> Any:
    got = invoke(["replay", *args], env)
    assert got.exit_code == 0, got.stderr
    return got


def test_json_replay_matches_onnxruntime_run_directly(
    env: dict[str, str], store: Store, sessions: dict[str, Any]
) -> None:
    doc = _replay(env, "--model", store.model, "-o", "json").json()
    assert [v["label"] for v in doc["versions"]] == ["champion (2)", "previous (1)"]
    samples = doc["samples"]
    assert len(samples) == ALL
    ids = [s["sample_id"] for s in samples]
    truth = direct(sessions, store.inputs(ids))
    for version in ("2", "1"):
        assert [s["predictions"][version] for s in samples] == truth[version]["labels"].tolist()
        np.testing.assert_allclose(
            [s["confidences"][version] for s in samples], truth[version]["confidence"], atol=1e-6
        )
        np.testing.assert_allclose(
            [s["squeeze_scores"][version] for s in samples], truth[version]["squeeze"], atol=1e-5
        )
    flips = truth["2"]["labels"] != truth["1"]["labels"]
    assert [s["flip"] for s in samples] == flips.tolist()

    by_id = store.by_id()
    flagged = np.array([by_id[i]["flagged"] for i in ids])
    labels = np.array([by_id[i].get("label", -1) for i in ids])
    judged = flagged & (labels >= 0)
    assert judged.sum() == ADVERSARIAL + OLD
    summary = doc["summary"]
    assert summary["samples"] == ALL and summary["adversarial"] == ADVERSARIAL + UNLABELLED + OLD
    assert summary["flips"] == int(flips.sum())
    assert summary["flip_rate_adversarial"] == pytest.approx(flips[flagged].mean(), abs=1e-4)
    assert summary["flip_rate_other"] == pytest.approx(flips[~flagged].mean(), abs=1e-4)
    fooled = {v: judged & (truth[v]["labels"] != labels) for v in ("2", "1")}
    for row, version in zip(summary["versions"], ("2", "1"), strict=True):
        assert row["fooled"] == int(fooled[version].sum())
        assert row["labelled_adversarial"] == int(judged.sum())
        shift = truth[version]["confidence"].astype(float) - truth["2"]["confidence"]
        assert row["confidence_shift"] == pytest.approx(shift.mean(), abs=1e-4)
    fool_champion = fooled["2"]
    assert fool_champion.sum() > 10, "FGSM (eps 3) should fool the champion on many inputs"
    resisted = int((fool_champion & (truth["1"]["labels"] == labels)).sum())
    (resistance,) = summary["resistance"]
    assert resistance["fool_baseline"] == int(fool_champion.sum())
    assert resistance["resisted"] == resisted
    rate = resisted / fool_champion.sum()
    helps = rate >= 0.5 and fooled["1"].sum() < fooled["2"].sum()
    verdict = doc["verdict"]
    assert verdict.startswith(
        f"previous (1) resists {rate * 100:.0f}% ({resisted} of {int(fool_champion.sum())}) "
        "of the flagged inputs that fool champion (2)"
    )
    assert verdict.endswith("rolling back to it would help" if helps else "would not help")
    for s in samples:
        if not judged[ids.index(s["sample_id"])]:
            assert s["fooled"] is None


def test_table_output_ends_with_the_verdict(env: dict[str, str], store: Store) -> None:
    doc = _replay(env, "--model", store.model, "--client", "mallory-2", "-o", "json").json()
    got = _replay(env, "--model", store.model, "--client", "mallory-2")
    assert "replaying 45 samples" in got.stderr and "champion (2), previous (1)" in got.stderr
    lines = got.stdout.strip().splitlines()
    assert " ".join(lines[-1].split()) == " ".join(f"verdict: {doc['verdict']}".split())
    assert "adv. success" in got.stdout and "FLIP" in got.stdout
    assert "Traceback" not in got.stdout + got.stderr


def test_parquet_reads_back_with_pandas(
    env: dict[str, str], store: Store, sessions: dict[str, Any], tmp_path: Path
) -> None:
    import pandas as pd

    path = tmp_path / "replay.parquet"
    got = _replay(
        env,
        "--model",
        store.model,
        "--versions",
        "previous,champion",
        "-o",
        "parquet",
        "--out",
        str(path),
    )
    assert f"wrote {ALL} rows" in got.stdout and "verdict: " in got.stdout
    frame = pd.read_parquet(path)
    assert len(frame) == ALL
    truth = direct(sessions, np.stack(frame["input"].to_numpy()).astype(np.float32))
    for version in ("1", "2"):
        assert frame[f"prediction_v{version}"].tolist() == truth[version]["labels"].tolist()
        np.testing.assert_allclose(frame[f"confidence_v{version}"], truth[version]["confidence"])
    assert frame["flip"].tolist() == (truth["1"]["labels"] != truth["2"]["labels"]).tolist()
    labelled = frame["label"].notna()
    assert labelled.sum() == ADVERSARIAL + OLD and str(frame["label"].dtype) == "Int64"
    assert frame.loc[~labelled, "fooled_v1"].isna().all()
    wrong = frame.loc[labelled, "prediction_v2"] != frame.loc[labelled, "label"]
    assert frame.loc[labelled, "fooled_v2"].tolist() == wrong.tolist()
    meta = frame.attrs["aml_replay"]
    assert meta["versions"][0]["label"] == "previous (1)"  # the baseline is the first asked
    assert got.stdout.strip().endswith(meta["verdict"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--client", "mallory-2", "--since", "15m"], ADVERSARIAL),
        (["--client", "mallory-2", "--since", "4h"], ADVERSARIAL + OLD),
        (["--client", "mallory-2", "--since", "4h", "--until", "1h"], OLD),
        (["--client", "mallory-3"], UNLABELLED),
        (["--min-score", "0.85"], 8 + UNLABELLED),
        (["--limit", "7"], 7),
    ],
)
def test_selection_options(
    env: dict[str, str], store: Store, args: list[str], expected: int
) -> None:
    got = _replay(env, "--model", store.model, *args, "-o", "json")
    doc = got.json()
    assert len(doc["samples"]) == expected
    by_id = store.by_id()
    chosen = [by_id[s["sample_id"]] for s in doc["samples"]]
    if "--client" in args:
        assert {r["client"] for r in chosen} == {args[args.index("--client") + 1]}
    if "--min-score" in args:
        assert min(r["detector_score"] for r in chosen) >= 0.85
    if "--limit" in args:
        newest = sorted(store.records, key=lambda r: r["time"], reverse=True)[:7]
        assert [s["sample_id"] for s in doc["samples"]] == [r["sample_id"] for r in newest]
        assert "raise --limit" in got.stderr


async def _post_alert(lab: LabHandle, labels: dict[str, str]) -> str:
    from console.adapters.alertmanager import AlertmanagerClient

    am = AlertmanagerClient.connect(lab.settings.alertmanager.url, 5.0)
    try:
        await am.post_alerts([{"labels": labels, "startsAt": datetime.now(UTC).isoformat()}])
        for alert in await am.alerts():
            if alert.labels.get("uid") == labels["uid"]:
                return alert.fingerprint
    finally:
        await am.aclose()
    raise AssertionError("the posted alert is not listed")


def test_an_alert_selects_its_client_and_model(
    lab: LabHandle, env: dict[str, str], store: Store
) -> None:
    labels = {
        "alertname": "AMLReplayTest",
        "client": "mallory-2",
        "model": store.model,
        "uid": uuid.uuid4().hex,
    }
    fingerprint = asyncio.run(_post_alert(lab, labels))
    got = invoke(["replay", "--alert", fingerprint, "-o", "json"], env)
    assert got.exit_code == 0, got.stderr
    doc = got.json()
    # The client and model come from the alert; the window starts 5 minutes before it.
    assert doc["selection"]["alert_labels"]["uid"] == labels["uid"]
    assert doc["selection"]["client"] == "mallory-2" and doc["selection"]["model"] == store.model
    assert len(doc["samples"]) == ADVERSARIAL
    unknown = invoke(["replay", "--alert", "0123456789abcdef"], env)
    assert unknown.exit_code == 1
    assert "no alert with fingerprint '0123456789abcdef'" in unknown.stderr


def _register(lab: LabHandle, model: SeededModel, tags: dict[str, str]) -> str:
    """A new version of ``model`` on the champion's artifact, with ``tags``."""
    base = model.version(model.champion)
    api = f"{lab.settings.mlflow.url}/api/2.0/mlflow"
    with httpx.Client(trust_env=False, timeout=10) as http:
        created = http.post(
            f"{api}/model-versions/create",
            json={
                "name": model.name,
                "source": base.source,
                "run_id": base.run_id,
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
        )
        created.raise_for_status()
        return str(created.json()["model_version"]["version"])


def _one_line_error(got: Any) -> str:
    assert got.exit_code == 1, (got.stdout, got.stderr)
    assert got.stdout == ""
    lines = got.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), got.stderr
    assert "Traceback" not in got.stderr
    return " ".join(got.stderr.split())


def test_a_tampered_artifact_is_refused(
    lab: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    fill_store(tmp_path, seeded_model.name)
    env = {**cli_env(lab.config_path), "CONSOLE_SAMPLES__PATH": str(tmp_path)}
    tampered = _register(lab, seeded_model, {"onnx_sha256": "0" * 64})
    untagged = _register(lab, seeded_model, {"framework": "onnx"})
    actual = seeded_model.sha256[seeded_model.champion]

    got = invoke(
        ["replay", "--model", seeded_model.name, "--versions", f"champion,{tampered}"], env
    )
    error = _one_line_error(got)
    assert f"{seeded_model.name} version {tampered}: artifact sha256 {actual}" in error
    assert f"does not match the onnx_sha256 tag {'0' * 64}" in error

    got = invoke(["replay", "--model", seeded_model.name, "--versions", untagged], env)
    error = _one_line_error(got)
    assert f"version {untagged} has no onnx_sha256 tag (artifact sha256 {actual})" in error
    assert "never run" in error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--versions", "champion,9"], "has no version 9 (versions: 1, 2)"),
        (["--versions", "candidate"], "has no alias 'candidate' (aliases: champion -> 2"),
        (["--versions", "not an alias"], "is neither a version number nor an alias name"),
        (["--client", "nobody"], "no samples matched (model {model}, client nobody)"),
        (["--since", "yesterday"], "--since 'yesterday' is neither a duration"),
        (["--since", "2026-01-01T00:00:00"], "has no UTC offset"),
        (["-o", "parquet"], "--output parquet needs --out FILE"),
        (["--out", "x.parquet"], "--out is only for --output parquet"),
        (["--endpoint", "ftp://example.org"], "is not an http(s)://host:port URL"),
    ],
)
def test_bad_input_gives_one_line_errors(
    env: dict[str, str], store: Store, args: list[str], message: str
) -> None:
    error = _one_line_error(invoke(["replay", "--model", store.model, *args], env))
    assert message.format(model=store.model) in error


def test_an_unknown_model_and_an_empty_store(env: dict[str, str], tmp_path: Path) -> None:
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    fill_store(tmp_path / "ghost", ghost)
    ghostly = {**env, "CONSOLE_SAMPLES__PATH": str(tmp_path / "ghost")}
    error = _one_line_error(invoke(["replay", "--model", ghost], ghostly))
    assert f"model '{ghost}' is not in the registry" in error
    error = _one_line_error(invoke(["replay", "--model", "no-such-model"], env))
    assert "no samples matched (model no-such-model)" in error
    empty = {**env, "CONSOLE_SAMPLES__PATH": str(tmp_path / "none")}
    error = _one_line_error(invoke(["replay"], empty))
    assert f"no samples matched (model digits) in the sample store {tmp_path / 'none'}" in error
