"""Seed the lab registry: the digits model, version 1 logistic regression, version 2 a small MLP,
each an ONNX file whose sha256 is a version tag; aliases ``previous`` -> 1, ``champion`` -> 2.

Training and ONNX export happen at most once per MLflow server: the artifacts are logged to runs
of the experiment ``aml-lab-seed``, and every later model (``seed_model(url, "digits-<uuid>")``
in tests) registers versions pointing at those runs. Registry calls are plain REST with short
timeouts; the heavy libraries (scikit-learn, skl2onnx, onnxruntime) are imported only to train.

ONNX contract: input ``input`` float32 ``[N, 64]`` (raw 8x8 digits pixels, 0..16); outputs
``label`` int64 ``[N]`` and ``probabilities`` float32 ``[N, 10]``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from console.config import Settings
from console.errors import LabError

SEED_EXPERIMENT = "aml-lab-seed"
SEED_FORMAT = "1"
"""Bump when training or export changes, so runs logged by older code are not reused."""
KINDS = ("logreg", "mlp")
ARTIFACT_PATH = "model.onnx"


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


@dataclass(frozen=True)
class _Source:
    """A logged seed artifact that model versions can point at."""

    kind: str
    run_id: str
    source: str
    sha256: str
    accuracy: float


@dataclass(frozen=True)
class _Trained:
    kind: str
    onnx: bytes
    accuracy: float


_sources: dict[str, list[_Source]] = {}
_sources_lock = threading.Lock()


def seed_model(
    mlflow_url: str, name: str, *, versions: int = 2, timeout_s: float = 30.0
) -> SeededModel:
    """Register a new model ``name`` with ``versions`` versions (alternating logistic regression
    and MLP, starting with the former) and aliases ``champion`` (last) and ``previous`` (the one
    before). Cheap after the first call against a server. Raises LabError if ``name`` exists."""
    if versions < 1:
        raise LabError("a seeded model needs at least one version")
    with _Registry(mlflow_url, timeout_s) as reg:
        sources = _seed_sources(reg)
        reg.post(
            "registered-models/create",
            {
                "name": name,
                "description": "Digits classifier seeded by aml-console (ONNX).",
                "tags": [{"key": "aml.seeded", "value": "true"}],
            },
        )
        made = []
        for i in range(versions):
            src = sources[i % len(sources)]
            tags = _version_tags(src)
            body = reg.post(
                "model-versions/create",
                {
                    "name": name,
                    "source": src.source,
                    "run_id": src.run_id,
                    "description": f"{src.kind} on digits, held-out accuracy {src.accuracy:.3f}",
                    "tags": [{"key": k, "value": v} for k, v in tags.items()],
                },
            )
            made.append(
                SeededVersion(
                    version=str(body["model_version"]["version"]),
                    kind=src.kind,
                    run_id=src.run_id,
                    source=src.source,
                    artifact_path=ARTIFACT_PATH,
                    sha256=src.sha256,
                    accuracy=src.accuracy,
                )
            )
        champion = made[-1].version
        previous = made[-2].version if len(made) > 1 else None
        for alias, version in (("previous", previous), ("champion", champion)):
            if version is not None:
                reg.post(
                    "registered-models/alias", {"name": name, "alias": alias, "version": version}
                )
    return SeededModel(name=name, versions=made, champion=champion, previous=previous)


def describe_model(mlflow_url: str, name: str, *, timeout_s: float = 10.0) -> SeededModel | None:
    """Read a seeded model back from the registry (None if there is no such model)."""
    with _Registry(mlflow_url, timeout_s) as reg:
        model = reg.get_if_exists("registered-models/get", {"name": name})
        if model is None:
            return None
        aliases = {
            a["alias"]: str(a["version"]) for a in model["registered_model"].get("aliases", [])
        }
        found = reg.get("model-versions/search", {"filter": f"name='{name}'", "max_results": 1000})
    made = []
    for mv in sorted(found.get("model_versions", []), key=lambda m: int(m["version"])):
        tags = {t["key"]: t["value"] for t in mv.get("tags", [])}
        made.append(
            SeededVersion(
                version=str(mv["version"]),
                kind=tags.get("model_kind", ""),
                run_id=mv.get("run_id", ""),
                source=mv.get("source", ""),
                artifact_path=tags.get("artifact_path", ""),
                sha256=tags.get("onnx_sha256", ""),
                accuracy=float(tags.get("accuracy", "nan")),
            )
        )
    champion = aliases.get("champion") or (made[-1].version if made else "")
    return SeededModel(
        name=name, versions=made, champion=champion, previous=aliases.get("previous")
    )


def ensure_seed_model(settings: Settings) -> SeededModel:
    """The lab's seed model (``settings.lab.seed_model``): created if missing, else read back."""
    url, name = settings.mlflow.url, settings.lab.seed_model
    existing = describe_model(url, name)
    if existing is not None and not existing.versions:
        raise LabError(
            f"registered model {name!r} exists but has no versions (an interrupted "
            "seed?): delete it in MLflow or set lab.seed_model to another name"
        )
    if existing is not None:
        return existing
    return seed_model(url, name)


def download_artifact(
    mlflow_url: str, name: str, version: str, *, timeout_s: float = 30.0
) -> bytes:
    """The ONNX bytes of a model version, through the server's artifact proxy."""
    with _Registry(mlflow_url, timeout_s) as reg:
        body = reg.get("model-versions/get-download-uri", {"name": name, "version": version})
        uri = str(body.get("artifact_uri", ""))
        return reg.download(uri)


def export_onnx(model: Any) -> bytes:
    """A fitted scikit-learn classifier (or pipeline) as ONNX bytes of the digits contract."""
    return _to_onnx(model)


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
) -> SeededVersion:
    """Log ``onnx`` to a new run of ``experiment`` and register it as a new version of the
    existing model ``name``, tagged like the seed's versions (``onnx_sha256``, ``framework``,
    ``accuracy``, ``artifact_path``, ``model_kind``) plus ``tags``. Aliases are not touched."""
    with _Registry(mlflow_url, timeout_s) as reg:
        if reg.get_if_exists("registered-models/get", {"name": name}) is None:
            raise LabError(f"registered model {name!r} does not exist")
        src = _log_run(reg, _experiment(reg, experiment), _Trained(kind, onnx, accuracy))
        version_tags = {**_version_tags(src), **(tags or {})}
        body = reg.post(
            "model-versions/create",
            {
                "name": name,
                "source": src.source,
                "run_id": src.run_id,
                "description": description,
                "tags": [{"key": k, "value": v} for k, v in version_tags.items()],
            },
        )
    return SeededVersion(
        version=str(body["model_version"]["version"]),
        kind=kind,
        run_id=src.run_id,
        source=src.source,
        artifact_path=ARTIFACT_PATH,
        sha256=src.sha256,
        accuracy=accuracy,
    )


# Internals -------------------------------------------------------------------------------------


def _version_tags(src: _Source) -> dict[str, str]:
    return {
        "onnx_sha256": src.sha256,
        "framework": "onnx",
        "accuracy": str(src.accuracy),
        "artifact_path": ARTIFACT_PATH,
        "model_kind": src.kind,
    }


def _seed_sources(reg: _Registry) -> list[_Source]:
    """Logged seed artifacts on this server: cached, else found by run tags, else trained."""
    with _sources_lock:
        if reg.url in _sources:
            return _sources[reg.url]
        experiment_id = _experiment(reg)
        found = [_find_run(reg, experiment_id, kind) for kind in KINDS]
        sources = [s for s in found if s is not None]
        if len(sources) != len(KINDS):
            sources = [_log_run(reg, experiment_id, t) for t in _train()]
        _sources[reg.url] = sources
        return sources


def _experiment(reg: _Registry, name: str = SEED_EXPERIMENT) -> str:
    for _ in range(2):
        got = reg.get_if_exists("experiments/get-by-name", {"experiment_name": name})
        if got is not None:
            return str(got["experiment"]["experiment_id"])
        created = reg.post_unless_exists("experiments/create", {"name": name})
        if created is not None:  # None: another process created it meanwhile
            return str(created["experiment_id"])
    raise LabError(f"cannot create MLflow experiment {name!r}")


def _find_run(reg: _Registry, experiment_id: str, kind: str) -> _Source | None:
    body = reg.post(
        "runs/search",
        {
            "experiment_ids": [experiment_id],
            "filter": (
                f"tags.aml_seed_kind = '{kind}' and tags.aml_seed_format = '{SEED_FORMAT}'"
                " and attributes.status = 'FINISHED'"
            ),
            "max_results": 1,
            "order_by": ["attributes.start_time DESC"],
        },
    )
    runs = body.get("runs", [])
    if not runs:
        return None
    info = runs[0]["info"]
    tags = {t["key"]: t["value"] for t in runs[0].get("data", {}).get("tags", [])}
    return _Source(
        kind=kind,
        run_id=info["run_id"],
        source=f"{info['artifact_uri']}/{ARTIFACT_PATH}",
        sha256=tags["onnx_sha256"],
        accuracy=float(tags["accuracy"]),
    )


def _log_run(reg: _Registry, experiment_id: str, trained: _Trained) -> _Source:
    sha = hashlib.sha256(trained.onnx).hexdigest()
    now_ms = int(time.time() * 1000)
    tags = {
        "aml_seed_kind": trained.kind,
        "aml_seed_format": SEED_FORMAT,
        "onnx_sha256": sha,
        "accuracy": str(trained.accuracy),
    }
    run = reg.post(
        "runs/create",
        {
            "experiment_id": experiment_id,
            "start_time": now_ms,
            "run_name": f"seed-{trained.kind}",
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        },
    )["run"]["info"]
    artifact_uri = str(run["artifact_uri"])
    reg.upload(f"{artifact_uri}/{ARTIFACT_PATH}", trained.onnx)
    reg.post(
        "runs/log-metric",
        {
            "run_id": run["run_id"],
            "key": "accuracy",
            "value": trained.accuracy,
            "timestamp": now_ms,
            "step": 0,
        },
    )
    reg.post(
        "runs/update",
        {"run_id": run["run_id"], "status": "FINISHED", "end_time": int(time.time() * 1000)},
    )
    return _Source(
        kind=trained.kind,
        run_id=run["run_id"],
        source=f"{artifact_uri}/{ARTIFACT_PATH}",
        sha256=sha,
        accuracy=trained.accuracy,
    )


_trained: list[_Trained] = []


def _train() -> list[_Trained]:
    """Fit both seed models on digits and export them to ONNX (once per process)."""
    if _trained:
        return _trained
    try:
        import numpy as np
        from sklearn.datasets import load_digits
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as exc:
        raise LabError(f"{exc.name} not installed: pip install -e '.[lab]'") from None
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y, test_size=0.25, random_state=0, stratify=y
    )
    models = {
        # Scaled: on raw pixels lbfgs needs ~15x longer and ends less accurate.
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "mlp": MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=0),
    }
    for kind in KINDS:
        model = models[kind].fit(x_train, y_train)
        onnx = _to_onnx(model)
        accuracy = round(_onnx_accuracy(onnx, x_test, y_test), 4)
        _trained.append(_Trained(kind, onnx, accuracy))
    return _trained


def _to_onnx(model: Any) -> bytes:
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError as exc:
        raise LabError(f"{exc.name} not installed: pip install -e '.[lab]'") from None
    classifier = model.steps[-1][1] if hasattr(model, "steps") else model
    # zipmap off: probabilities as a plain [N, 10] tensor, which onnxruntime and V2 servers expect.
    onnx_model = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, 64]))],
        options={id(classifier): {"zipmap": False}},
    )
    return bytes(onnx_model.SerializeToString())


def _onnx_accuracy(onnx: bytes, x_test: Any, y_test: Any) -> float:
    """Accuracy of the exported artifact itself, so the tag describes what is served."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise LabError(f"{exc.name} not installed: pip install -e '.[lab]'") from None
    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    labels = session.run(["label"], {"input": x_test})[0]
    return float((labels == y_test).mean())


class _Registry:
    """Minimal MLflow REST client: JSON calls, artifact upload/download, errors as LabError."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, trust_env=False)

    def __enter__(self) -> _Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def get(self, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._call("GET", endpoint, params=params) or {}

    def get_if_exists(self, endpoint: str, params: dict[str, Any]) -> dict[str, Any] | None:
        return self._call("GET", endpoint, params=params, tolerate="RESOURCE_DOES_NOT_EXIST")

    def post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", endpoint, json=body) or {}

    def post_unless_exists(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return self._call("POST", endpoint, json=body, tolerate="RESOURCE_ALREADY_EXISTS")

    def _call(
        self, method: str, endpoint: str, *, tolerate: str = "", **kwargs: Any
    ) -> dict[str, Any] | None:
        """The JSON answer; None if MLflow answered the error code ``tolerate``."""
        response = self._send(method, f"/api/2.0/mlflow/{endpoint}", **kwargs)
        if response.status_code == 200:
            data: dict[str, Any] = response.json()
            return data
        if tolerate and _error_code(response) == tolerate:
            return None
        raise LabError(f"MLflow {endpoint}: HTTP {response.status_code} {_error_text(response)}")

    def upload(self, uri: str, data: bytes) -> None:
        response = self._send("PUT", _proxy_path(uri), content=data)
        if response.status_code != 200:
            raise LabError(
                f"MLflow artifact upload to {uri}: HTTP {response.status_code} "
                f"{_error_text(response)}"
            )

    def download(self, uri: str) -> bytes:
        response = self._send("GET", _proxy_path(uri))
        if response.status_code != 200:
            raise LabError(f"MLflow artifact {uri}: HTTP {response.status_code}")
        return response.content

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise LabError(f"MLflow at {self.url} unreachable: {exc}") from None


def _proxy_path(uri: str) -> str:
    """``mlflow-artifacts:/1/<run>/artifacts/x`` -> the server's artifact proxy path."""
    parts = urlsplit(uri)
    if parts.scheme != "mlflow-artifacts":
        raise LabError(
            f"artifact {uri!r} is not served by the tracking server "
            "(start it with --serve-artifacts)"
        )
    return f"/api/2.0/mlflow-artifacts/artifacts/{parts.path.lstrip('/')}"


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error_code", ""))
    except ValueError:
        return ""


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:300]
    except ValueError:
        return response.text[:300]


__all__ = [
    "SeededModel",
    "SeededVersion",
    "describe_model",
    "download_artifact",
    "ensure_seed_model",
    "export_onnx",
    "register_onnx_version",
    "seed_model",
]
