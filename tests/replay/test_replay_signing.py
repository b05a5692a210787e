"""`aml-console replay` verifies each version's signature after its sha256 tag, with the lab's
key (the session lab's real MLflow, real ONNX artifacts): a signed version replays, an unsigned
one and a swapped artifact whose sha256 tag was rewritten to match are refused in one line
before any version runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from replay_stack import fill_store
from replay_support import invoke
from signing_support import artifacts_of, register_signed, register_unsigned, swap_artifact
from support import LabHandle, cli_env

from console.lab.seed import SeededModel


def _refused(got: Any) -> str:
    assert got.exit_code == 1, (got.stdout, got.stderr)
    assert got.stdout == "" and "Traceback" not in got.stderr
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), got.stderr
    return lines[0]


def test_replay_runs_signed_versions_and_refuses_unsigned_and_swapped(
    lab: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> None:
    model = seeded_model.name
    fill_store(tmp_path, model)
    env = {**cli_env(lab.config_path), "CONSOLE_SAMPLES__PATH": str(tmp_path)}
    logreg, mlp = artifacts_of(lab, seeded_model)
    signed = register_signed(lab, model, logreg)

    ok = invoke(["replay", "--model", model, "--versions", f"1,{signed}", "-o", "json"], env)
    assert ok.exit_code == 0, ok.stderr
    assert "signature-verified" in ok.json()["backend"]

    unsigned = register_unsigned(lab, model, mlp)
    got = invoke(["replay", "--model", model, "--versions", f"1,{unsigned}"], env)
    assert f"{model} version {unsigned} is unsigned" in _refused(got)

    victim = register_signed(lab, model, logreg)
    swap_artifact(lab, model, victim, mlp)
    got = invoke(["replay", "--model", model, "--versions", f"{victim},1"], env)
    line = _refused(got)
    assert f"{model} version {victim}: the signature does not verify" in line
    assert "not the ones signed" in line

    # Without a key (none configured, none in the run dir) replay runs them unverified.
    open_env = {
        **env,
        "CONSOLE_MODELS__SIGNING_PUBLIC_KEYS": "[]",
        "CONSOLE_MODELS__SIGNING_KEY": str(tmp_path / "no.key"),
    }
    got = invoke(["replay", "--model", model, "--versions", f"{victim},1", "-o", "json"], open_env)
    assert got.exit_code == 0, got.stderr
    assert "signature" not in got.json()["backend"]
