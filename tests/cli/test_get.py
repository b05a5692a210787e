"""``aml-console get VIEW`` on the real session lab: the rows a view's snapshot holds (alerts
posted to the real Alertmanager, clients scraped by the real Prometheus, blocks and budgets in
the real Redis policy store, versions in the real MLflow registry, samples in the gateway's
store format, runs of a real runbook run), as JSON and CSV with the same fields, filtered and
limited; a source down is one line on stderr; a closed stdout is no traceback."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from metrics_support import Client, Traffic, exporter_registered, wait_for_result
from support import REPO, LabHandle, free_port, run_cli
from typer.testing import CliRunner

from console.adapters.backends import Backends
from console.cli.get_rows import CLIENT_FIELDS, MITIGATION_FIELDS, SAMPLE_FIELDS
from console.cli.main import app
from console.config import Settings, load_settings
from console.lab.gateway.samples import Sample, SampleStore
from console.lab.gateway.sinks import JsonlSink
from console.lab.seed import SeededModel

HOSTILE = "=cmd|' /C calc'!A0"
"""A client id a spreadsheet would run as a command (CSV formula injection)."""


@pytest.fixture
def env(lab: LabHandle, tmp_path: Path) -> dict[str, str]:
    """The session lab's services with this test's own state: run dir, Redis key prefix, audit
    log, sample store; the gateway (which the session lab does not run) at a closed port."""
    return {
        **lab.env,
        "CONSOLE_RUN_DIR": str(tmp_path / "run"),
        "CONSOLE_REDIS__KEY_PREFIX": f"get{uuid.uuid4().hex[:8]}",
        "CONSOLE_AUDIT__PATH": str(tmp_path / "audit" / "audit.jsonl"),
        "CONSOLE_AUDIT__HMAC_KEY": "get-test-audit-key-" + "x" * 16,
        "CONSOLE_OPERATOR": "get-tester",
        "CONSOLE_SAMPLES__PATH": str(tmp_path / "samples"),
        "CONSOLE_GATEWAY__URL": f"http://127.0.0.1:{free_port()}",
    }


def _settings(env: dict[str, str]) -> Settings:
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("CONSOLE_")]:
            mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        return load_settings()


def get(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(app, ["get", *args], env=env)


def rows_of(result: Any) -> list[dict[str, Any]]:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    return rows


def csv_of(result: Any) -> tuple[list[str], list[dict[str, str]]]:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    reader = csv.reader(io.StringIO(result.stdout))
    header = next(reader)
    return header, [dict(zip(header, line, strict=True)) for line in reader]


def warnings_of(result: Any) -> list[str]:
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("warning: ") for line in lines), result.stderr
    return lines


def test_a_block_and_a_budget_in_the_policy_store_are_rows_of_get_mitigations(
    env: dict[str, str],
) -> None:
    client = f"get-{uuid.uuid4().hex[:8]}"

    async def mitigate() -> None:
        backends = Backends(_settings(env))
        try:
            policy = backends.policy
            await policy.block(client, timedelta(minutes=30), "scraping", "oncall-ann", "run-b1")
            await policy.set_budget(client, 60, "oncall-ann", "run-q1", previous_qpm=600)
        finally:
            await backends.aclose()

    asyncio.run(mitigate())
    rows = rows_of(get(env, "mitigations", "-o", "json"))
    assert [(r["kind"], r["client"]) for r in rows] == [("block", client), ("budget", client)]
    block, budget = rows
    assert set(block) == set(budget) == set(MITIGATION_FIELDS)
    assert (block["reason"], block["operator"], block["run_id"]) == (
        "scraping",
        "oncall-ann",
        "run-b1",
    )
    expires, created = (datetime.fromisoformat(block[k]) for k in ("expires_at", "set_at"))
    assert expires - created == timedelta(minutes=30) and expires > datetime.now(UTC)
    assert (budget["qpm"], budget["previous_qpm"], budget["run_id"]) == (60, 600, "run-q1")

    assert [r["kind"] for r in rows_of(get(env, "mitigations", "--top", "1", "-o", "json"))] == [
        "block"
    ]
    assert rows_of(get(env, "mitigations", "--client", "someone-else", "-o", "json")) == []
    assert len(rows_of(get(env, "mitigations", "--since", "1h", "-o", "json"))) == 2
    header, lines = csv_of(get(env, "mitigations", "-o", "csv"))
    assert header == list(MITIGATION_FIELDS)
    assert [(line["kind"], line["client"], line["qpm"]) for line in lines] == [
        ("block", client, ""),
        ("budget", client, "60"),
    ]
    table = get(env, "mitigations")
    assert table.exit_code == 0
    assert client in table.stdout and "scraping" in table.stdout
    assert "60 qpm (was 600)" in table.stdout


def test_a_runbook_run_is_a_row_of_get_runs_and_its_block_of_get_mitigations(
    env: dict[str, str],
) -> None:
    client = f"get-run-{uuid.uuid4().hex[:8]}"
    ran = CliRunner().invoke(
        app,
        ["runbook", "run", "block-client", "-p", f"client={client}", "-p", "reason=probing"]
        + ["--yes", "-o", "json"],
        env=env,
    )
    assert ran.exit_code == 0, (ran.stdout, ran.stderr)
    run_id = json.loads(ran.stdout)["run"]["run_id"]
    runs = rows_of(get(env, "runs", "--client", client, "-o", "json"))
    assert [(r["run_id"], r["runbook"], r["status"]) for r in runs] == [
        (run_id, "block-client", "succeeded")
    ]
    assert runs[0]["operator"] == "get-tester" and runs[0]["applied"]
    assert rows_of(get(env, "runs", "--client", "nobody", "-o", "json")) == []
    blocks = rows_of(get(env, "mitigations", "--client", client, "-o", "json"))
    assert [(b["kind"], b["run_id"], b["reason"]) for b in blocks] == [("block", run_id, "probing")]


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _post_alerts(lab: LabHandle, alerts: list[dict[str, Any]]) -> None:
    httpx.post(
        f"{lab.settings.alertmanager.url}/api/v2/alerts", json=alerts, timeout=10, trust_env=False
    ).raise_for_status()


def test_get_alerts_lists_alertmanager_alerts_with_client_and_start(
    env: dict[str, str], lab: LabHandle
) -> None:
    name = f"GetTest{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).replace(microsecond=0)
    recent, old = f"get-new-{name}", f"get-old-{name}"

    def alert(client: str, started: datetime, ends: datetime) -> dict[str, Any]:
        return {
            "labels": {"alertname": name, "severity": "warning", "client": client, "model": "m"},
            "annotations": {"summary": f"probing walk by {client}"},
            "startsAt": _iso(started),
            "endsAt": _iso(ends),
        }

    started = {recent: now - timedelta(minutes=5), old: now - timedelta(hours=3)}
    _post_alerts(lab, [alert(c, s, now + timedelta(hours=1)) for c, s in started.items()])
    try:
        rows = rows_of(get(env, "alerts", "--client", recent, "-o", "json"))
        assert len(rows) == 1
        (row,) = rows
        assert (row["alertname"], row["severity"], row["client"], row["model"]) == (
            name,
            "warning",
            recent,
            "m",
        )
        assert row["summary"] == f"probing walk by {recent}"
        assert row["labels"]["alertname"] == name and row["silenced_by"] == []
        assert datetime.fromisoformat(row["starts_at"]) == started[recent]

        def ours(*args: str) -> set[str]:
            found = rows_of(get(env, "alerts", *args, "-o", "json"))
            return {r["client"] for r in found if r["alertname"] == name}

        assert ours() == {recent, old}
        assert ours("--since", "1h") == {recent}
        assert ours("--since", "4h") == {recent, old}
        header, lines = csv_of(get(env, "alerts", "--client", old, "-o", "csv"))
        assert "client" in header and [line["client"] for line in lines] == [old]
        assert f"alertname={name}" in lines[0]["labels"]
    finally:
        _post_alerts(lab, [alert(c, s, datetime.now(UTC)) for c, s in started.items()])


def test_get_clients_rows_in_view_order_json_and_csv_with_a_hostile_id_neutralised(
    env: dict[str, str], lab_prometheus: LabHandle
) -> None:
    tag = uuid.uuid4().hex[:8]
    model, benign = f"getm-{tag}", f"get-alice-{tag}"
    traffic = Traffic(
        clients=(
            Client(HOSTILE, rps=60.0, extraction_score=0.05),
            Client(benign, rps=50.0, extraction_score=0.02),
        ),
        model=model,
    )
    with exporter_registered(lab_prometheus, traffic, name=f"get-{tag}"):
        wait_for_result(
            lab_prometheus.settings.prometheus.url,
            # the bounded recordings the view reads, one rule interval behind the rates
            f'count(aml:client_listed:rate1m{{model="{model}"}}) == 2',
            90,
        )
        as_json = get(env, "clients", "--model", model, "-o", "json")
        rows = rows_of(as_json)
        assert [r["client"] for r in rows] == [HOSTILE, benign]  # the view's order: by rate
        assert all(r["model"] == model and r["labelled"] and r["rate"] > 0 for r in rows)
        assert [r["extraction"] for r in rows] == [0.05, 0.02]
        assert all(r["blocked"] is False for r in rows)  # the policy store answered
        assert list(rows[0]) == list(CLIENT_FIELDS)
        # The session lab runs no gateway: its state is missing, and says so.
        assert any(w.startswith("warning: gateway state:") for w in warnings_of(as_json))

        header, lines = csv_of(get(env, "clients", "--model", model, "-o", "csv"))
        assert header == list(CLIENT_FIELDS) and "client" in header
        assert [line["client"] for line in lines] == ["'" + HOSTILE, benign]
        assert not any(cell.startswith(("=", "+", "@")) for ln in lines for cell in ln.values())
        assert float(lines[0]["rate"]) > 0 and lines[0]["labelled"] == "true"

        top = rows_of(get(env, "clients", "--model", model, "--top", "1", "-o", "json"))
        assert [r["client"] for r in top] == [HOSTILE]
        table = get(env, "clients", "--model", model)
        assert table.exit_code == 0 and benign in table.stdout

        redis_down = {**env, "CONSOLE_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0"}
        partial = get(redis_down, "clients", "--model", model, "-o", "json")
        assert [r["client"] for r in rows_of(partial)] == [HOSTILE, benign]
        assert all(r["blocked"] is None for r in rows_of(partial))  # unknown, not "no"
        assert any(w.startswith("warning: policy store:") for w in warnings_of(partial))


def test_get_models_shows_the_registry_versions_and_aliases(
    env: dict[str, str], lab_prometheus: LabHandle, seeded_model: SeededModel
) -> None:
    served = {**env, "CONSOLE_MODELS__SERVED": json.dumps([seeded_model.name])}
    rows = rows_of(get(served, "models", "--model", seeded_model.name, "-o", "json"))
    assert len(rows) == 1
    (row,) = rows
    assert row["registered"] is True
    assert row["aliases"] == {"champion": seeded_model.champion, "previous": seeded_model.previous}
    assert sorted(row["versions"]) == sorted(v.version for v in seeded_model.versions)
    champion = next(v for v in seeded_model.versions if v.version == seeded_model.champion)
    assert row["champion_sha256"] == champion.sha256

    registry_down = {**served, "CONSOLE_MLFLOW__URL": f"http://127.0.0.1:{free_port()}"}
    partial = get(registry_down, "models", "--model", seeded_model.name, "-o", "json")
    assert [r["registered"] for r in rows_of(partial)] == [None]
    assert any(w.startswith("warning: registry:") for w in warnings_of(partial))


def _sample(client: str, when: datetime, sample_id: str) -> Sample:
    return Sample(
        sample_id=sample_id,
        time=when.isoformat(),
        client=client,
        model="digits",
        version="2",
        detector_score=0.91,
        extraction_score=0.3,
        prediction=7,
        confidence=0.55,
        flagged=True,
        trace_id="ab" * 16,
        input_sha256="cd" * 32,
        input=[0.0] * 64,
    )


def test_get_samples_reads_the_sample_store_filtered_and_neutralised_in_csv(
    env: dict[str, str],
) -> None:
    now = datetime.now(UTC)
    _write_samples(
        Path(env["CONSOLE_SAMPLES__PATH"]),
        [
            _sample(HOSTILE, now - timedelta(minutes=1), "s-new"),
            _sample("bob", now - timedelta(days=2), "s-old"),
        ],
    )

    rows = rows_of(get(env, "samples", "-o", "json"))
    assert [(r["sample_id"], r["client"]) for r in rows] == [("s-new", HOSTILE), ("s-old", "bob")]
    assert rows[0]["flagged"] is True and rows[0]["prediction"] == 7
    assert [
        r["sample_id"] for r in rows_of(get(env, "samples", "--since", "1h", "-o", "json"))
    ] == ["s-new"]
    assert [
        r["sample_id"] for r in rows_of(get(env, "samples", "--client", "bob", "-o", "json"))
    ] == ["s-old"]
    header, lines = csv_of(get(env, "samples", "-o", "csv"))
    assert header == list(SAMPLE_FIELDS)
    assert [line["client"] for line in lines] == ["'" + HOSTILE, "bob"]
    table = get(env, "samples")
    assert table.exit_code == 0 and "bob" in table.stdout


@pytest.mark.parametrize(
    ("view", "setting"),
    [
        ("alerts", "CONSOLE_ALERTMANAGER__URL"),
        ("clients", "CONSOLE_PROMETHEUS__URL"),
        ("models", "CONSOLE_PROMETHEUS__URL"),
        ("mitigations", "CONSOLE_REDIS__URL"),
    ],
)
def test_a_view_whose_source_is_down_is_one_error_line_and_exit_1(
    env: dict[str, str], view: str, setting: str
) -> None:
    scheme = "redis" if "REDIS" in setting else "http"
    down = {**env, setting: f"{scheme}://127.0.0.1:{free_port()}"}
    proc = run_cli(["get", view, "-o", "json"], down)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "cannot connect" in lines[0] or "connecting" in lines[0]


@pytest.mark.parametrize("output", ["json", "csv", "table"])
def test_a_closed_stdout_ends_the_output_quietly(env: dict[str, str], output: str) -> None:
    """stdout is a pipe whose reader is gone before the command writes (``| head -c 0``):
    every write fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "console", "get", "runs", "-o", output],
            env=env,
            cwd=REPO,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no traceback, no "Exception ignored"


def test_the_table_shows_hostile_text_without_control_characters_or_markup(
    env: dict[str, str],
) -> None:
    client = "evil\x1b]0;owned\x07[bold red]x[/]"
    _write_samples(Path(env["CONSOLE_SAMPLES__PATH"]), [_sample(client, datetime.now(UTC), "s-1")])
    table = get(env, "samples")
    assert table.exit_code == 0, table.stderr
    assert "\x1b" not in table.stdout and "\x07" not in table.stdout
    assert "[bold red]x[/]" in table.stdout  # shown as typed, not read as Rich markup
    assert rows_of(get(env, "samples", "-o", "json"))[0]["client"] == client


def _write_samples(root: Path, samples: list[Sample]) -> None:
    """Through the gateway's own sample store and sink (the files the gateway writes)."""
    sink = JsonlSink("samples", root=root)
    sink.start()
    store = SampleStore(root, sink, fraction=0.0, hash_only=False, retention_days=30)
    for sample in samples:
        store.write(sample)
    sink.close()


def test_json_cut_short_by_the_reader_is_no_traceback(env: dict[str, str]) -> None:
    """``get samples -o json | head -c 10``: the reader takes 10 bytes of an answer longer
    than a pipe holds, and leaves; the rest of the write meets a closed pipe."""
    now = datetime.now(UTC)
    root = Path(env["CONSOLE_SAMPLES__PATH"])
    _write_samples(root, [_sample("bob", now, f"s-{i:04d}") for i in range(200)])
    with subprocess.Popen(
        [sys.executable, "-m", "console", "get", "samples", "-o", "json"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        head = proc.stdout.read(10)
        proc.stdout.close()
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    assert head.startswith(b"[\n  {")
    assert code == 0 and err == "", err


def test_csv_is_refused_by_commands_other_than_get() -> None:
    result = CliRunner().invoke(app, ["runbook", "list", "-o", "csv"])
    assert result.exit_code == 2
    assert "csv is offered by `aml-console get` only" in result.stderr
    assert result.stdout == ""
