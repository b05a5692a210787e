"""Seed the lab registry: the digits model, version 1 logistic regression, version 2 a small MLP,
each an ONNX file whose sha256 is a version tag; aliases ``previous`` -> 1, ``champion`` -> 2.

Training and ONNX export (``seed_train``) happen at most once per MLflow server: the artifacts
are logged to runs of the experiment ``aml-lab-seed`` (``seed_runs``), and every later model
(``seed_model(url, "digits-<uuid>")`` in tests) registers versions pointing at those runs. Every
MLflow call goes through the registry adapter (``MlflowRegistry``) with short timeouts.

Signing: the lab signs what it registers (``console.model_signing``) with its private key,
``[models] signing_key`` or ``<run_dir>/secrets/model-signing.key``, made with its ``.pub`` by
``ensure_seed_model``, which also signs the seed's artifacts logged before signatures existed
(an older lab's MLflow): only bytes the lab itself made (``seed_provenance``), never what the
registry's tags vouch for. The functions that take only a URL use the key ``ensure_seed_model``
or ``use_signing_key`` gave for that URL in this process, unless given one.

The functions here are synchronous (the launcher, the CLI and the tests call them so); each
runs its registry calls on an event loop of its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from console.adapters.http import make_client
from console.adapters.mlflow import MlflowRegistry, ModelVersion
from console.config import MlflowSection, Settings, load_settings
from console.errors import ConsoleError, LabError
from console.lab.seed_provenance import SeedProvenance, manifest_path
from console.lab.seed_runs import (
    ARTIFACT_PATH,
    LoggedArtifact,
    ensure_experiment,
    find_or_log_seed_artifacts,
    log_onnx_run,
    sign_unsigned_seed_artifacts,
)
from console.lab.seed_train import TrainedModel, export_onnx
from console.model_signing import ensure_key_pair, private_key_path, public_key_path

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeededVersion:
    version: str
    kind: str
    """``logreg`` or ``mlp``."""
    run_id: str
    source: str
    """The artifact's URI (``mlflow-artifacts:/<exp>/<run>/artifacts/model.onnx``)."""
    artifact_path: str
    sha256: str
    accuracy: float
    """Held-out accuracy of the ONNX model on digits."""


@dataclass(frozen=True)
class SeededModel:
    """A registered model made by the seeder: its versions, aliases and artifact hashes."""

    name: str
    versions: list[SeededVersion]
    champion: str
    """Version the ``champion`` alias points at (the last one)."""
    previous: str | None
    """Version the ``previous`` alias points at (the one before), None for a single version."""

    @property
    def sha256(self) -> dict[str, str]:
        """``onnx_sha256`` per version number."""
        return {v.version: v.sha256 for v in self.versions}

    def version(self, number: str) -> SeededVersion:
        for v in self.versions:
            if v.version == number:
                return v
        raise KeyError(number)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "champion": self.champion,
            "previous": self.previous,
            "versions": [asdict(v) for v in self.versions],
        }


_seed_artifacts: dict[str, list[LoggedArtifact]] = {}
"""Per MLflow URL: the logged artifacts every seeded model's versions point at."""
_seed_artifacts_lock = threading.Lock()
_signing_keys: dict[str, Path] = {}
"""Per MLflow URL: the private key the lab signs its registrations with in this process."""


def use_signing_key(mlflow_url: str, private_key: Path) -> None:
    """Sign what this process registers on ``mlflow_url`` with ``private_key`` (PEM, EC)."""
    _signing_keys[mlflow_url.rstrip("/")] = private_key


def _key_for(mlflow_url: str, given: Path | None) -> Path | None:
    """``given``, else the key set for the URL in this process, else the key of the console's
    own settings (``load_settings()``) when they name the same MLflow and the key exists."""
    url = mlflow_url.rstrip("/")
    if given is not None or url in _signing_keys:
        return given or _signing_keys[url]
    try:
        settings = load_settings()
    except ConsoleError:
        return None
    key = private_key_path(settings)
    if settings.mlflow.url.rstrip("/") != url or not key.is_file():
        return None
    return key


def _manifest_for(mlflow_url: str, key: Path | None) -> Path | None:
    """Where the seed artifacts logged now are recorded: beside ``key``, else beside the key
    the console's own settings name for this MLflow (made later by ``ensure_seed_model``)."""
    if key is not None:
        return manifest_path(key)
    try:
        settings = load_settings()
    except ConsoleError:
        return None
    if settings.mlflow.url.rstrip("/") != mlflow_url.rstrip("/"):
        return None
    return manifest_path(private_key_path(settings))


def seed_model(
    mlflow_url: str,
    name: str,
    *,
    versions: int = 2,
    timeout_s: float = 30.0,
    signing_key: Path | None = None,
) -> SeededModel:
    """Register a new model ``name`` with ``versions`` versions (alternating logistic regression
    and MLP, starting with the former) and aliases ``champion`` (last) and ``previous`` (the one
    before). Cheap after the first call against a server. Raises LabError if ``name`` exists.
    Artifacts trained now are signed with ``signing_key`` (default: the URL's, see above)."""
    if versions < 1:
        raise LabError("a seeded model needs at least one version")
    artifacts = _seed_artifacts_on(mlflow_url, timeout_s, _key_for(mlflow_url, signing_key))

    async def register(registry: MlflowRegistry) -> SeededModel:
        created = await registry.create_model(
            name,
            "Digits classifier seeded by aml-console (ONNX).",
            tags={"aml.seeded": "true"},
        )
        if created is None:
            raise LabError(f"registered model {name!r} already exists in MLflow")
        made = []
        for i in range(versions):
            artifact = artifacts[i % len(artifacts)]
            registered = await registry.create_version(
                name,
                artifact.source,
                artifact.run_id,
                f"{artifact.kind} on digits, held-out accuracy {artifact.accuracy:.3f}",
                tags=_version_tags(artifact),
            )
            made.append(_seeded_version(registered.version, artifact))
        champion = made[-1].version
        previous = made[-2].version if len(made) > 1 else None
        for alias, version in (("previous", previous), ("champion", champion)):
            if version is not None:
                await registry.set_alias(name, alias, version)
        return SeededModel(name=name, versions=made, champion=champion, previous=previous)

    return _with_registry(mlflow_url, timeout_s, register)


def describe_model(mlflow_url: str, name: str, *, timeout_s: float = 10.0) -> SeededModel | None:
    """Read a seeded model back from the registry (None if there is no such model)."""

    async def describe(registry: MlflowRegistry) -> SeededModel | None:
        model = await registry.get_model(name)
        if model is None:
            return None
        found = await registry.list_versions(name, max_results=1000)
        made = [_described_version(v) for v in found]
        champion = model.aliases.get("champion") or (made[-1].version if made else "")
        return SeededModel(
            name=name, versions=made, champion=champion, previous=model.aliases.get("previous")
        )

    return _with_registry(mlflow_url, timeout_s, describe)


def ensure_seed_model(settings: Settings) -> SeededModel:
    """The lab's seed model (``settings.lab.seed_model``): created if missing, else read back;
    the lab's signing key pair made if missing, and the seed's unsigned artifacts signed."""
    url, name = settings.mlflow.url, settings.lab.seed_model
    key = private_key_path(settings)
    if ensure_key_pair(key):
        log.info("lab: made the model signing key pair %s (.pub beside it)", key)
    use_signing_key(url, key)
    existing = describe_model(url, name)
    if existing is not None and not existing.versions:
        raise LabError(
            f"registered model {name!r} exists but has no versions (an interrupted "
            "seed?): delete it in MLflow or set lab.seed_model to another name"
        )
    seeded = existing if existing is not None else seed_model(url, name, signing_key=key)
    artifacts = _seed_artifacts_on(url, 30.0, key)
    known = [artifact.sha256 for artifact in artifacts if artifact.ours]
    provenance = SeedProvenance(known, manifest_path(key))

    async def migrate(registry: MlflowRegistry) -> list[str]:
        return await sign_unsigned_seed_artifacts(registry, name, key, provenance)

    signed = _with_registry(url, 30.0, migrate)
    if signed:
        log.info("lab: signed %d seed artifact(s) registered before signing", len(signed))
    return seeded


def download_artifact(
    mlflow_url: str, name: str, version: str, *, timeout_s: float = 30.0
) -> bytes:
    """The ONNX bytes of a model version, through the server's artifact proxy."""

    async def download(registry: MlflowRegistry) -> bytes:
        return await registry.download_artifact(name, version)

    return _with_registry(mlflow_url, timeout_s, download)


def register_onnx_version(
    mlflow_url: str,
    name: str,
    onnx: bytes,
    *,
    kind: str,
    accuracy: float,
    description: str,
    tags: dict[str, str] | None = None,
    experiment: str = "aml-lab-attacks",
    timeout_s: float = 30.0,
    signing_key: Path | None = None,
) -> SeededVersion:
    """Log ``onnx`` to a new run of ``experiment`` and register it as a new version of the
    existing model ``name``, tagged like the seed's versions (``onnx_sha256``, ``framework``,
    ``accuracy``, ``artifact_path``, ``model_kind``) plus ``tags``, signed with
    ``signing_key`` (default: the URL's; none known: unsigned, logged). Aliases are not
    touched."""
    key = _key_for(mlflow_url, signing_key)
    if key is None:
        log.warning("lab: %s registered unsigned (no signing key for %s)", name, mlflow_url)

    async def register(registry: MlflowRegistry) -> SeededVersion:
        if await registry.get_model(name) is None:
            raise LabError(f"registered model {name!r} does not exist")
        experiment_id = await ensure_experiment(registry, experiment)
        trained = TrainedModel(kind, onnx, accuracy)
        artifact = await log_onnx_run(registry, experiment_id, trained, key)
        registered = await registry.create_version(
            name,
            artifact.source,
            artifact.run_id,
            description,
            tags={**_version_tags(artifact), **(tags or {})},
        )
        return _seeded_version(registered.version, artifact)

    return _with_registry(mlflow_url, timeout_s, register)


def _seed_artifacts_on(
    mlflow_url: str, timeout_s: float, signing_key: Path | None
) -> list[LoggedArtifact]:
    """The seed's logged artifacts on this server: cached, else found by run tags (and their
    signature by ``signing_key``'s ``.pub``), else trained (signed with ``signing_key`` and
    recorded in the manifest beside it). The lock keeps threads of one process from training
    and logging them twice."""
    url = mlflow_url.rstrip("/")

    async def find(registry: MlflowRegistry) -> list[LoggedArtifact]:
        manifest = _manifest_for(url, signing_key)
        return await find_or_log_seed_artifacts(registry, signing_key, manifest)

    with _seed_artifacts_lock:
        cached = _seed_artifacts.get(url)
        # Found before a key was known (unchecked): looked up again now that one can check.
        checkable = signing_key is not None and public_key_path(signing_key).is_file()
        if cached is None or (checkable and not all(a.ours for a in cached)):
            _seed_artifacts[url] = _with_registry(mlflow_url, timeout_s, find)
        return _seed_artifacts[url]


def _version_tags(artifact: LoggedArtifact) -> dict[str, str]:
    return {
        "onnx_sha256": artifact.sha256,
        "framework": "onnx",
        "accuracy": str(artifact.accuracy),
        "artifact_path": ARTIFACT_PATH,
        "model_kind": artifact.kind,
    }


def _seeded_version(version: str, artifact: LoggedArtifact) -> SeededVersion:
    return SeededVersion(
        version=version,
        kind=artifact.kind,
        run_id=artifact.run_id,
        source=artifact.source,
        artifact_path=ARTIFACT_PATH,
        sha256=artifact.sha256,
        accuracy=artifact.accuracy,
    )


def _described_version(registered: ModelVersion) -> SeededVersion:
    tags = registered.tags
    return SeededVersion(
        version=registered.version,
        kind=tags.get("model_kind", ""),
        run_id=registered.run_id,
        source=registered.source,
        artifact_path=tags.get("artifact_path", ""),
        sha256=tags.get("onnx_sha256", ""),
        accuracy=float(tags.get("accuracy", "nan")),
    )


def _with_registry(
    mlflow_url: str, timeout_s: float, use: Callable[[MlflowRegistry], Awaitable[T]]
) -> T:
    """``use`` a registry client of its own to completion, from synchronous code."""

    async def run() -> T:
        # trust_env off: a developer's HTTP(S)_PROXY must not capture calls to the loopback lab.
        # An MLflow behind its basic-auth app: MLFLOW_TRACKING_* as the section reads them.
        options = MlflowSection(url=mlflow_url, timeout_s=timeout_s)
        client = make_client(mlflow_url, timeout_s, options=options, backend="mlflow")
        registry = MlflowRegistry(client)
        try:
            return await use(registry)
        finally:
            await registry.aclose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    # Called from a coroutine (an async test): asyncio.run refuses a thread whose loop is
    # running, so the calls run on a helper thread, blocking the caller as they always did.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


__all__ = [
    "SeededModel",
    "SeededVersion",
    "describe_model",
    "download_artifact",
    "ensure_seed_model",
    "export_onnx",
    "register_onnx_version",
    "seed_model",
    "use_signing_key",
]
