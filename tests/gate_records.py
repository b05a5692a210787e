"""A recorded evaluation the promotion gate accepts as evidence: measured as ``[robustness]``
asks (its ``epsilon``, at least its ``samples``, every evasion attack of its ``attacks``), with
the figures a test picks, written signed on a real registry version (as
``fleet_support.put_record`` writes them; ``write_gate_record`` from a running event loop, a
Pilot test's). Import as ``from gate_records import ...``."""

from __future__ import annotations

import asyncio
import uuid

from console.adapters.mlflow import MlflowRegistry
from console.config import Settings
from console.lab.seed import SeededModel
from console.robustness import EVASION_ATTACKS, AttackFigures, RobustnessRecord


def gate_record(
    settings: Settings,
    seeded: SeededModel,
    version: str,
    *,
    worst: float = 0.42,
    clean: float = 0.95,
    fpr: float = 0.03,
) -> RobustnessRecord:
    """``version``'s record: FGSM at ``worst`` (the worst rate), the other evasion attacks of
    the gate below it."""
    gate = settings.robustness
    evasion = sorted((set(gate.attacks) & EVASION_ATTACKS) | {"fgsm"})
    attacks = {
        name: AttackFigures(
            attack=name,
            adversarial_success_rate=worst if name == "fgsm" else worst / 2,
            samples=gate.samples,
        )
        for name in evasion
    }
    return RobustnessRecord(
        model=seeded.name,
        version=version,
        onnx_sha256=seeded.sha256[version],
        evaluated_at="2026-12-03T12:00:00Z",
        clean_accuracy=clean,
        detector_fpr=fpr,
        detector_threshold=0.5,
        epsilon=gate.epsilon,
        holdout=gate.holdout,
        samples=gate.samples,
        attacks=attacks,
        run_id="run-" + uuid.uuid4().hex[:8],
    )


async def write_gate_record(
    settings: Settings, seeded: SeededModel, version: str, *, worst: float = 0.42
) -> RobustnessRecord:
    """Write a record of ``version`` that passes the gate, signed with the context's signing
    key when it has one (the session lab's), as ``aml-console eval`` signs it."""
    record = gate_record(settings, seeded, version, worst=worst)
    key = settings.models.signing_key
    pem = key.read_bytes() if key is not None and key.is_file() else None
    registry = MlflowRegistry.connect(settings.mlflow.url, 10.0)
    try:
        await registry.set_version_tags(seeded.name, version, record.signed_tags(pem))
    finally:
        await registry.aclose()
    return record


def put_gate_record(
    settings: Settings, seeded: SeededModel, version: str, *, worst: float = 0.42
) -> RobustnessRecord:
    """``write_gate_record`` outside an event loop."""
    return asyncio.run(write_gate_record(settings, seeded, version, worst=worst))
