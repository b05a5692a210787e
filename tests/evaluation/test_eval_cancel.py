"""Cancelling an evaluation records nothing: the service with its cancel flag set once the
first attack is done, and the CLI interrupted (SIGINT) mid-run: exit 130, one line, no run and
no tag in MLflow."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time

import pytest
from eval_support import robustness_tags, runs_of, version_tags
from support import REPO, LabHandle

from console.evaluation.model import EvaluationCancelled, EvaluationRequest, Progress
from console.evaluation.service import evaluate
from console.lab.seed import SeededModel


def test_cancel_after_the_first_attack_records_nothing(
    lab: LabHandle, seeded_model: SeededModel
) -> None:
    cancel = threading.Event()
    seen: list[Progress] = []

    def progress(event: Progress) -> None:
        seen.append(event)
        if event.stage == "fgsm" and event.done == event.total:
            cancel.set()

    request = EvaluationRequest(
        model=seeded_model.name,
        version="2",
        attacks=("fgsm", "pgd", "extraction"),
        samples=30,
        budget=200,
    )
    # The gate measures as the request does, so the uncancelled run records the version's record.
    gate = lab.settings.robustness.model_copy(update={"samples": 30, "attacks": ["fgsm", "pgd"]})
    settings = lab.settings.model_copy(update={"robustness": gate})
    with pytest.raises(EvaluationCancelled, match="nothing was recorded"):
        asyncio.run(evaluate(settings, request, progress=progress, cancel=cancel))
    stages = [e.stage for e in seen]
    assert "fgsm" in stages
    assert "extraction" not in stages and "record" not in stages
    assert stages.count("pgd") <= 1  # stopped at pgd's first chunk at the latest
    url = lab.settings.mlflow.url
    assert robustness_tags(version_tags(url, seeded_model.name, "2")) == {}
    assert runs_of(url, seeded_model.name) == []

    # The same request uncancelled does record: the check above is not vacuous.
    done = asyncio.run(evaluate(settings, request))
    assert done.recorded and done.record.attacks.keys() == {"fgsm", "pgd", "extraction"}
    assert robustness_tags(version_tags(url, seeded_model.name, "2"))


def test_ctrl_c_cancels_the_cli_cleanly(lab: LabHandle, seeded_model: SeededModel) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "console",
            "eval",
            seeded_model.name,
            "--version",
            "1",
            "--attacks",
            "hopskipjump",
            "--samples",
            "400",
        ],
        cwd=REPO,
        env=lab.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(6)  # imports, download, then HopSkipJump on 400 digits: far from done
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "cancelled" in lines[0] or "interrupted" in lines[0]
    assert stdout == ""
    url = lab.settings.mlflow.url
    assert robustness_tags(version_tags(url, seeded_model.name, "1")) == {}
    assert runs_of(url, seeded_model.name) == []


def test_ctrl_c_once_recording_has_begun_is_deferred() -> None:
    """The CLI's SIGINT handler: the first Ctrl-C cancels, a second interrupts, but from the
    ``record`` stage on none interrupts (the recording's writes finish, record and signature
    last), so a second Ctrl-C never leaves half a record."""
    from console.cli.eval import Interrupts

    seen: list[str] = []
    measuring = Interrupts(lambda e: seen.append(e.stage))
    measuring.update(Progress("fgsm", 1, 2))
    measuring.on_interrupt(signal.SIGINT, None)
    assert measuring.cancel.is_set()
    with pytest.raises(KeyboardInterrupt):
        measuring.on_interrupt(signal.SIGINT, None)

    recording = Interrupts(lambda e: seen.append(e.stage))
    recording.update(Progress("record", 0, 1))
    for _ in range(3):
        recording.on_interrupt(signal.SIGINT, None)  # no KeyboardInterrupt
    assert not recording.cancel.is_set() and seen == ["fgsm", "record"]
