"""Test helpers for the robustness shown in the Models, Fleet and replay views: records written
on real registry versions (``RobustnessRecord(...).to_tags()`` with ``set_version_tags``, as
``aml-console eval`` stores them), and a test's own run dir, audit log and Redis prefix over the
session lab, with incidents and drill reports of its own."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import LabHandle

from console.adapters.mlflow import MlflowRegistry
from console.config import Settings, load_settings
from console.config_robustness import RobustnessSection
from console.incidents.store import IncidentStore
from console.lab.seed import SeededModel
from console.robustness import EVASION_ATTACKS, AttackFigures, RobustnessRecord

EARLIER = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def fleet_env(lab: LabHandle, tmp_path: Path, model: str) -> dict[str, str]:
    """The session lab's services (Prometheus included) with this test's own state."""
    return {
        **lab.env,
        "CONSOLE_RUN_DIR": str(tmp_path / "run"),
        "CONSOLE_REDIS__KEY_PREFIX": f"flt{uuid.uuid4().hex[:8]}",
        "CONSOLE_AUDIT__PATH": str(tmp_path / "audit" / "audit.jsonl"),
        "CONSOLE_AUDIT__HMAC_KEY": "fleet-test-audit-key-" + "x" * 16,
        "CONSOLE_OPERATOR": "fleet-tester",
        "CONSOLE_SAMPLES__PATH": str(tmp_path / "samples"),
        "CONSOLE_MODELS__SERVED": json.dumps([model]),
    }


def settings_of(env: dict[str, str]) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("CONSOLE_")]:
            mp.delenv(key)
        for key, value in env.items():
            if key.startswith("CONSOLE_"):
                mp.setenv(key, value)
        return load_settings()


def record(
    seeded: SeededModel,
    version: str,
    *,
    clean: float = 0.95,
    fgsm: float = 0.42,
    fpr: float = 0.03,
    at: datetime = LATER,
    sha256: str | None = None,
) -> RobustnessRecord:
    """A record of ``version`` as eval writes it, measured as the default gate asks (its
    epsilon, samples and every evasion attack of ``[robustness] attacks``): FGSM at ``fgsm``,
    the worst; the other evasion attacks lower; and extraction."""
    gate = RobustnessSection()
    attacks = {
        name: AttackFigures(
            attack=name,
            adversarial_success_rate=fgsm if name == "fgsm" else min(fgsm, 0.05),
            samples=gate.samples,
        )
        for name in gate.attacks
        if name in EVASION_ATTACKS
    }
    attacks["fgsm"] = AttackFigures(attack="fgsm", adversarial_success_rate=fgsm, samples=200)
    attacks["extraction"] = AttackFigures(
        attack="extraction", surrogate_agreement=0.8, budget=2000, queries=2000
    )
    return RobustnessRecord(
        model=seeded.name,
        version=version,
        onnx_sha256=seeded.sha256[version] if sha256 is None else sha256,
        evaluated_at=at.isoformat().replace("+00:00", "Z"),
        clean_accuracy=clean,
        detector_fpr=fpr,
        detector_threshold=0.5,
        epsilon=gate.epsilon,
        holdout=gate.holdout,
        samples=gate.samples,
        attacks=attacks,
        run_id="run-" + uuid.uuid4().hex[:8],
    )


def put_record(settings: Settings, seeded: SeededModel, rec: RobustnessRecord) -> None:
    """Write ``rec`` on its version in the real registry, signed as eval signs it: with the
    context's signing key when it has one (the session lab's), else unsigned."""
    key = settings.models.signing_key
    pem = key.read_bytes() if key is not None and key.is_file() else None
    put_tags(settings, seeded, rec.version, rec.signed_tags(pem))


def put_tags(settings: Settings, seeded: SeededModel, version: str, tags: dict[str, str]) -> None:
    async def write() -> None:
        registry = MlflowRegistry.connect(settings.mlflow.url, 10.0)
        try:
            await registry.set_version_tags(seeded.name, version, tags)
        finally:
            await registry.aclose()

    asyncio.run(write())


def open_incidents(settings: Settings, model: str) -> None:
    """On ``model``: a critical and a warning incident now, an info one 40 days ago (outside
    the fleet's 30 days); and a critical one on another model."""
    store = IncidentStore(settings)
    now = datetime.now(UTC)
    for severity, when, on in (
        ("critical", now, model),
        ("warning", now - timedelta(days=2), model),
        ("info", now - timedelta(days=40), model),
        ("critical", now, "another-model"),
    ):
        store.open(
            title=f"{severity} on {on}",
            severity=severity,
            attack_kind="extraction",
            model=on,
            client=None,
            operator="fleet-tester",
            opened_at=when,
        )


def write_drills(settings: Settings, model: str) -> None:
    """Drill reports on ``model``: one contained and one not in the last days, one not
    contained 40 days ago (outside the window), and an unreadable one."""
    now = datetime.now(UTC)
    root = settings.run_dir / "drills"
    for name, when, contained in (
        ("d-1", now - timedelta(days=1), True),
        ("d-2", now - timedelta(hours=3), False),
        ("d-old", now - timedelta(days=40), False),
    ):
        folder = root / name
        folder.mkdir(parents=True)
        report = {
            "id": name,
            "scenario": "extraction",
            "model": model,
            "started_at": when.isoformat(),
            "scores": {"contained": contained},
        }
        (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    (root / "d-broken").mkdir()
    (root / "d-broken" / "report.json").write_text("{not json", encoding="utf-8")


def evaluations(
    settings: Settings, seeded: SeededModel, history: list[tuple[str, float]]
) -> list[RobustnessRecord]:
    """Each ``(version, fgsm rate)`` recorded in turn as ``aml-console eval`` records it
    (``recording.record_evaluation``: a FINISHED run of ``aml-robustness`` with its metrics,
    then the version's record signed with the context's key): the records as written."""
    from console.evaluation.recording import record_evaluation, signing_key

    async def write() -> list[RobustnessRecord]:
        registry = MlflowRegistry.connect(settings.mlflow.url, 10.0)
        written = []
        try:
            for version, fgsm in history:
                now = datetime.now(UTC)
                rec = record(seeded, version, fgsm=fgsm, at=now)
                key = signing_key(settings)
                written.append(await record_evaluation(registry, rec, {"test": True}, key))
        finally:
            await registry.aclose()
        return written

    return asyncio.run(write())


def forge_run(
    settings: Settings,
    model: str,
    version: str,
    sha256: str,
    rate: float,
    epsilon: str | None = None,
) -> str:
    """A FINISHED run in ``aml-robustness`` tagged as an evaluation of ``version`` (artifact
    ``sha256``) with ``max_adversarial_success = rate`` (and the param ``epsilon``, when
    given), as anyone who can write to the tracking server could log one; its id."""
    from console.evaluation.recording import EXPERIMENT

    async def write() -> str:
        registry = MlflowRegistry.connect(settings.mlflow.url, 10.0)
        try:
            experiment = await registry.get_experiment_id(EXPERIMENT)
            assert experiment is not None
            now = int(datetime.now(UTC).timestamp() * 1000)
            tags = {"aml.model": model, "aml.version": version, "aml.onnx_sha256": sha256}
            run = await registry.create_run(experiment, "forged", now, tags=tags)
            params = {} if epsilon is None else {"epsilon": epsilon}
            await registry.log_batch(run.run_id, {"max_adversarial_success": rate}, params)
            await registry.update_run(run.run_id, "FINISHED", now + 1)
            return run.run_id
        finally:
            await registry.aclose()

    return asyncio.run(write())


def log_run_metric(settings: Settings, run_id: str, key: str, value: float) -> None:
    async def write() -> None:
        registry = MlflowRegistry.connect(settings.mlflow.url, 10.0)
        try:
            now = int(datetime.now(UTC).timestamp() * 1000) + 1000
            await registry.log_metric(run_id, key, value, now)
        finally:
            await registry.aclose()

    asyncio.run(write())


@contextmanager
def failing_path(
    upstream: str,
    broken: str,
    failing: threading.Event | None = None,
    *,
    when: bytes = b"",
    seen: list[bytes] | None = None,
) -> Iterator[str]:
    """A proxy in front of the real ``upstream`` (MLflow) that passes every call on, except
    those whose path ends with ``broken`` (and whose body holds ``when``), answered 503 (while
    ``failing`` is set, when one is given): one API of a live server failing. The bodies of the
    calls to ``broken`` it passed on are appended to ``seen``, in the order they were answered.
    Yields its URL."""
    import httpx

    client = httpx.Client(base_url=upstream, timeout=10.0)

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            down = failing is None or failing.is_set()
            matches = self.path.split("?")[0].endswith(broken)
            if down and matches and when in body:
                answer = b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "down"}'
                status, kind = 503, "application/json"
            else:
                headers = {"content-type": self.headers.get("content-type", "")}
                got = client.request(self.command, self.path, content=body, headers=headers)
                answer, status = got.content, got.status_code
                if matches and seen is not None and status == 200:
                    seen.append(body)
                kind = got.headers.get("content-type", "")
            try:
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:  # the client went away (a refresh cancelled): nothing to answer
                return

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        client.close()
