"""The recorded robustness of a version: tags round trip, the gate, regressions, and the
records a registry writer could forge (another artifact's, unsigned, re-signed figures)."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from console.config import load_settings
from console.config_robustness import DIGITS_HOLDOUT, RobustnessSection
from console.evaluation.holdout import DIGITS_SPLIT
from console.robustness import (
    RECORD_TAG,
    AttackFigures,
    RobustnessRecord,
    detector_misses,
    gate_misses,
    masking_misses,
    measurement_misses,
    recorded_robustness,
    regressions,
)
from console.robustness_seal import SIGNATURE_TAG
from console.robustness_trust import RecordTrust, record_trust, trusted_record

SHA = "ab" * 32


def _pair() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def _record(clean: float = 0.95, fgsm: float = 0.3, fpr: float = 0.02) -> RobustnessRecord:
    return RobustnessRecord(
        model="digits",
        version="3",
        onnx_sha256=SHA,
        evaluated_at="2026-12-03T12:00:00Z",
        clean_accuracy=clean,
        detector_fpr=fpr,
        detector_threshold=0.5,
        epsilon=2.0,
        holdout=RobustnessSection().holdout,
        samples=200,
        attacks={
            "fgsm": AttackFigures(attack="fgsm", adversarial_success_rate=fgsm, samples=200),
            "pgd": AttackFigures(attack="pgd", adversarial_success_rate=fgsm / 2, samples=200),
        },
    )


def test_tags_round_trip_and_name_each_figure() -> None:
    tags = _record().to_tags()
    assert tags["aml.robustness.clean_accuracy"] == "0.9500"
    assert tags["aml.robustness.fgsm.adversarial_success_rate"] == "0.3000"
    assert tags["aml.robustness.max_adversarial_success"] == "0.3000"
    found = recorded_robustness(tags, SHA.upper())
    assert found.usable and found.record == _record()


def test_a_record_of_another_artifact_or_garbage_is_no_evaluation() -> None:
    tags = _record().to_tags()
    assert "another artifact" in recorded_robustness(tags, "cd" * 32).problem
    assert recorded_robustness({}, SHA).problem == "not evaluated"
    assert "unreadable" in recorded_robustness({RECORD_TAG: "{not json"}, SHA).problem
    broken = json.loads(tags[RECORD_TAG]) | {"clean_accuracy": 7.0}
    assert "outside 0..1" in recorded_robustness({RECORD_TAG: json.dumps(broken)}, SHA).problem


def test_with_trusted_keys_only_a_signed_record_counts() -> None:
    private, public = _pair()
    _, other_public = _pair()
    signed = _record().signed_tags(private)
    assert recorded_robustness(signed, SHA, [other_public, public]).usable
    assert "unsigned" in recorded_robustness(_record().to_tags(), SHA, [public]).problem
    # A registry writer raises the figures and keeps the old signature.
    forged = dict(signed)
    forged[RECORD_TAG] = _record(fgsm=0.01).to_tags()[RECORD_TAG]
    assert "does not verify" in recorded_robustness(forged, SHA, [public]).problem
    assert not recorded_robustness(signed | {SIGNATURE_TAG: "%%%"}, SHA, [public]).usable


def test_gate_misses_name_the_figure_and_regressions_use_the_margin() -> None:
    gate = RobustnessSection(
        max_adversarial_success=0.5, min_clean_accuracy=0.9, attacks=["fgsm", "pgd"], epsilon=2.0
    )
    assert gate_misses(_record(), gate) == []
    whys = [m.why for m in gate_misses(_record(clean=0.8, fgsm=0.7, fpr=0.3), gate)]
    assert any(w.startswith("clean_accuracy 0.800 is below") for w in whys)
    assert any(w.startswith("fgsm adversarial_success_rate 0.700") for w in whys)
    assert any(w.startswith("detector_fpr 0.300") for w in whys)
    champion = _record(fgsm=0.2)
    assert regressions(_record(fgsm=0.24), champion, 0.05) == []
    worse = regressions(_record(fgsm=0.3), champion, 0.05)
    assert [m.figure for m in worse] == ["max_adversarial_success"]


def test_a_record_measured_more_weakly_than_the_gate_asks_misses_it() -> None:
    gate = RobustnessSection(attacks=["fgsm", "pgd", "hopskipjump", "extraction"], samples=200)
    weak = _record().model_copy(update={"epsilon": 0.01, "samples": 10})
    whys = [m.why for m in gate_misses(weak, gate)]
    assert any("epsilon 0.01, the gate's is 1" in w for w in whys)
    assert any("10 held-out inputs, the gate asks 200" in w for w in whys)
    assert any(w.startswith("not measured: hopskipjump") for w in whys)  # extraction not gated
    full = gate.model_copy(update={"attacks": ["fgsm", "pgd"], "epsilon": 2.0})
    assert gate_misses(_record(), full) == []


def test_trust_refuses_copied_records_and_says_when_nothing_is_checked(tmp_path: Path) -> None:
    private, public = _pair()
    signed = _record().signed_tags(private) | {"onnx_sha256": SHA}
    trust = RecordTrust((public,))
    assert trusted_record(signed, trust, model="digits", version="3").usable
    copied = trusted_record(signed, trust, model="digits", version="5")
    assert "record of another version (digits v3)" in copied.problem
    assert not trusted_record(signed, trust, model="digits-b", version="3").usable
    unsigned = _record().to_tags() | {"onnx_sha256": SHA}
    open_trust = RecordTrust(unchecked="not signature-checked: no signing key is configured")
    found = trusted_record(unsigned, open_trust, model="digits", version="3")
    assert found.usable and "not signature-checked" in found.unchecked
    closed = RecordTrust(refused="no signing public key can be read (/x.pub)")
    assert (
        "no signing public key can be read"
        in trusted_record(signed, closed, model="digits", version="3").problem
    )


def test_configured_keys_that_cannot_be_read_trust_no_record(tmp_path: Path) -> None:
    missing = tmp_path / "gone.pub"
    settings = load_settings(models={"served": ["digits"], "signing_public_keys": [str(missing)]})
    assert "cannot be read" not in record_trust(settings).unchecked
    assert "no signing public key can be read" in record_trust(settings).refused


def test_a_record_of_another_holdout_or_of_repeated_rows_misses_the_gate() -> None:
    gate = RobustnessSection(attacks=["fgsm", "pgd"], epsilon=2.0, samples=200)
    assert gate.holdout == DIGITS_HOLDOUT == DIGITS_SPLIT.holdout_id
    named = _record().model_copy(update={"holdout": DIGITS_HOLDOUT, "unique_samples": 200})
    assert gate_misses(named, gate) == []
    other = named.model_copy(update={"holdout": "sha256:" + "12" * 32})
    whys = [m.why for m in measurement_misses(other, gate)]
    assert whys == [f"measured on holdout {other.holdout[:60]}, the gate asks {DIGITS_HOLDOUT}"]
    repeated = named.model_copy(update={"unique_samples": 6})
    whys = [m.why for m in measurement_misses(repeated, gate)]
    assert whys == ["measured on 6 distinct held-out inputs, the gate asks 200"]
    # The gate may name an agreed file instead of the built-in split.
    agreed = gate.model_copy(update={"holdout": other.holdout})
    assert measurement_misses(other, agreed) == []
    assert [m.figure for m in measurement_misses(named, agreed)] == ["holdout"]
    # A record from before records named their holdout is no evidence of its inputs.
    unnamed = _record().model_copy(update={"holdout": ""})
    assert [m.why for m in measurement_misses(unnamed, gate)] == [
        f"measured on holdout unnamed, the gate asks {DIGITS_HOLDOUT}"
    ]
    read_back = RobustnessRecord.model_validate_json(named.to_tags()[RECORD_TAG])
    assert (read_back.holdout, read_back.unique_samples) == (DIGITS_HOLDOUT, 200)


def test_hopskipjump_beating_pgd_is_suspected_gradient_masking() -> None:
    gate = RobustnessSection(attacks=["fgsm", "pgd", "hopskipjump"], epsilon=2.0)

    def with_rates(pgd: float, hsj: float) -> RobustnessRecord:
        record = _record(fgsm=0.0)
        attacks = dict(record.attacks)
        attacks["pgd"] = AttackFigures(attack="pgd", adversarial_success_rate=pgd)
        attacks["hopskipjump"] = AttackFigures(attack="hopskipjump", adversarial_success_rate=hsj)
        return record.model_copy(update={"attacks": attacks})

    masked = [m.why for m in gate_misses(with_rates(0.0, 0.23), gate)]
    assert masked == [
        "gradient masking suspected: black-box hopskipjump 0.230 beats white-box pgd 0.000 "
        "at epsilon 2 by more than 0.05"
    ]
    assert masking_misses(with_rates(0.40, 0.45)) == []  # within the margin
    assert masking_misses(with_rates(0.40, 0.13)) == []  # the usual order
    assert masking_misses(_record()) == []  # no hopskipjump: nothing to compare


def test_detector_settings_other_than_the_configured_ones_are_named() -> None:
    settings = load_settings(models={"served": ["digits"]})
    detectors = settings.detectors
    record = _record().model_copy(
        update={"detector_threshold": detectors.flag_threshold, "squeezers": detectors.squeezers}
    )
    assert detector_misses(record, detectors) == []
    lax = record.model_copy(update={"detector_threshold": 0.99, "squeezers": ["median2"]})
    whys = [m.why for m in detector_misses(lax, detectors)]
    assert whys[0] == (
        f"detector measured at flag_threshold 0.99, [detectors] has {detectors.flag_threshold:g}"
    )
    assert whys[1].startswith("detector measured with squeezers median2, [detectors] has ")
