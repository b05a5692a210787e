"""Which recorded evaluations to believe: the one place the promotion gate, the views, replay and
the lab decide whether a version's ``aml.robustness.record`` counts.

A record counts when it is signed by one of the artifact signing keys in force (``[models]
signing_public_keys``, or the lab's), measured the artifact the version's ``onnx_sha256`` names,
and names this very model and version (a record copied from a robust version onto a poisoned
one, with the sha256 tag pointed at the robust artifact, would otherwise pass). Keys that are
configured but cannot be read trust no record (closed, as the artifact check refuses); with no
key configured at all records are taken unsigned, and every reader says so beside the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.config import Settings
from console.model_signing import signing_policy
from console.robustness import RECORD_TAG, RecordedRobustness, recorded_robustness


@dataclass(frozen=True)
class RecordTrust:
    public_keys: tuple[bytes, ...] = ()
    refused: str = ""
    """Set when no record can be trusted here, and why."""
    unchecked: str = ""
    """Set when records are taken without a signature check, and why (shown with them)."""


def record_trust(settings: Settings) -> RecordTrust:
    """The keys in force, read now."""
    policy = signing_policy(settings)
    keys: list[bytes] = []
    for path in policy.public_keys:
        try:
            keys.append(path.read_bytes())
        except OSError:
            continue
    if policy.public_keys and not keys:
        names = ", ".join(str(p) for p in policy.public_keys)[:200]
        return RecordTrust(refused=f"no signing public key can be read ({names})")
    if not policy.public_keys and policy.required:
        return RecordTrust(refused="signatures are required and no public key is configured")
    if not keys:
        return RecordTrust(unchecked="not signature-checked: no signing key is configured")
    return RecordTrust(tuple(keys))


def trusted_record(
    tags: dict[str, str], trust: RecordTrust, *, model: str, version: str
) -> RecordedRobustness:
    """The version's record if ``trust`` believes it, else None and why."""
    if trust.refused and tags.get(RECORD_TAG):
        return RecordedRobustness(None, f"record not trusted: {trust.refused}")
    found = recorded_robustness(tags, tags.get("onnx_sha256", ""), trust.public_keys)
    record = found.record
    if record is None:
        return found
    if record.model != model or record.version != str(version):
        return RecordedRobustness(
            None,
            f"record of another version ({record.model[:60]} v{record.version[:12]}): "
            "evaluate this one",
        )
    return RecordedRobustness(record, unchecked=trust.unchecked)
