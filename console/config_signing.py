"""``[models]`` signing keys: which public keys a version's ONNX artifact must be signed by
(OpenSSF model-signing, an EC P-256 key, offline) before the gateway serves it or replay runs
it, and the private key the lab signs its own registrations with.

Mixed into ``ModelsSection``; the keys in force (with the lab's defaults under ``run_dir``) are
``console.model_signing.signing_policy(settings)``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from console.config_fields import Section


class SigningFields(Section):
    signing_public_keys: list[Path] = Field(default_factory=list)
    """PEM public keys (EC P-256) a version's ``<artifact>.sig`` may verify against; one is
    enough. Empty: ``<run_dir>/secrets/model-signing.pub`` when that file exists (the lab
    makes it), else no verification (``doctor`` and the gateway's log say so)."""
    signing_required: bool = False
    """With no public key to check against, refuse every version (``no_signing_key``) instead
    of loading it unverified. With a key, an unsigned version is refused either way."""
    signing_key: Path | None = None
    """The PEM private key the lab signs what it registers with, and ``model sign``'s default
    ``--key``; default ``<run_dir>/secrets/model-signing.key`` (made 0600 with its ``.pub`` by
    the lab's seeding)."""

    @field_validator("signing_public_keys")
    @classmethod
    def _absolute_keys(cls, value: list[Path]) -> list[Path]:
        # Absolute where the file is read: the launcher hands them to services in other dirs.
        return [p.expanduser().absolute() for p in value]

    @field_validator("signing_key")
    @classmethod
    def _absolute_key(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().absolute()


__all__ = ["SigningFields"]
