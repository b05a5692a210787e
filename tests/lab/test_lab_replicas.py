"""``lab up --replicas 3``: three gateway processes behind a real NGINX on the gateway's URL,
which asks the policy endpoint (``policy serve``) before each request; Prometheus scrapes each
replica and the endpoint directly. Driven through the CLI (subprocesses), against the session
lab's Redis and MLflow, with its own run dir, key prefix, ports and Prometheus."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from metrics_support import wait_for_result
from support import REPO, LabHandle, cli_env, free_port, lab_config, run_cli, unavailable
from support import write_config as write_test_config
from typer.testing import CliRunner

from console.adapters import processes
from console.cli.main import app
from console.config import load_settings
from console.errors import LabError
from console.lab import nginx, process, replica_specs
from console.lab.seed import SeededModel

log = logging.getLogger(__name__)
REPLICAS = 3
TIER = ["nginx", "policy", "gateway-1", "gateway-2", "gateway-3"]
ROWS = [[0.0] * 64]


@dataclass(frozen=True)
class ReplicatedLab:
    env: dict[str, str]
    run_dir: Path
    gateway_url: str
    prometheus_url: str
    model: str


def replicated_env(lab: LabHandle, run_dir: Path, model: str) -> dict[str, str]:
    return {
        **lab.env,
        "CONSOLE_RUN_DIR": str(run_dir),
        "CONSOLE_REDIS__KEY_PREFIX": f"rep{secrets.token_hex(4)}",
        "CONSOLE_AUDIT__PATH": str(run_dir / "audit" / "audit.jsonl"),
        "CONSOLE_AUDIT__HMAC_KEY": "replica-test-audit-key-" + "x" * 16,
        "CONSOLE_OPERATOR": "replica-tester",
        "CONSOLE_RUNBOOK_DIRS": json.dumps([str(REPO / "runbooks")]),
        "CONSOLE_ALERTMANAGER__URL": f"http://127.0.0.1:{free_port()}",
        "CONSOLE_PROMETHEUS__URL": f"http://127.0.0.1:{free_port()}",
        "CONSOLE_TRACES__PATH": str(run_dir / "traces"),
        "CONSOLE_SAMPLES__PATH": str(run_dir / "samples"),
        "CONSOLE_GATEWAY__URL": f"http://127.0.0.1:{free_port()}",
        "CONSOLE_LAB__POLICY_PORT": str(free_port()),
        # No [lab] replica_base_port: the launcher picks a free run and records it.
        "CONSOLE_MODELS__SERVED": json.dumps([model]),
        "CONSOLE_GATEWAY__SAMPLE_FRACTION": "0",
        "CONSOLE_TRAFFIC__URL": f"http://127.0.0.1:{free_port()}",
        "CONSOLE_TRAFFIC__CLIENTS": "2",
        "CONSOLE_TRAFFIC__RATE": "2",
    }


def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = run_cli(list(args), env, timeout=240)
    return done.returncode, done.stdout, done.stderr


def lab_status(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    code, out, err = cli(env, "lab", "status", "-o", "json")
    assert code == 0, err
    return {row["name"]: row for row in json.loads(out)}


@pytest.fixture
def replicated(
    lab: LabHandle, seeded_model: SeededModel, tmp_path: Path
) -> Iterator[ReplicatedLab]:
    """The environment of a lab whose gateway runs as replicas; everything it started is
    stopped afterwards (and the test checks that ``lab down`` does so itself)."""
    try:
        nginx.nginx_binary()
    except LabError as exc:  # names the apt package
        unavailable(str(exc))
    if shutil.which("prometheus") is None:
        unavailable("not installed: prometheus")
    run_dir = tmp_path / "run"
    env = replicated_env(lab, run_dir, seeded_model.name)
    handle = ReplicatedLab(
        env,
        run_dir,
        env["CONSOLE_GATEWAY__URL"],
        env["CONSOLE_PROMETHEUS__URL"],
        seeded_model.name,
    )
    try:
        yield handle
    finally:
        cli(env, "lab", "down")


def infer(http: httpx.Client, model: str, client: str) -> httpx.Response:
    body = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ROWS}]}
    return http.post(f"/v2/models/{model}/infer", json=body, headers={"X-Client-Id": client})


def answered_by_replica(ports: dict[str, int], client: str) -> dict[str, float]:
    """Each replica's own count of answered requests of ``client`` (its /metrics)."""
    pattern = re.compile(
        r'^aml_requests_total\{[^}]*client="' + re.escape(client) + r'"[^}]*\} ([0-9.e+]+)$'
    )
    counts = {}
    for name, port in ports.items():
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5, trust_env=False).text
        counts[name] = sum(
            float(m.group(1))
            for line in text.splitlines()
            if 'outcome="ok"' in line and (m := pattern.match(line))
        )
    return counts


def run_runbook(env: dict[str, str], name: str, *params: str) -> None:
    args = ["runbook", "run", name, *(a for p in params for a in ("-p", p)), "--yes"]
    code, out, err = cli(env, *args)
    assert code == 0, out + err


def wait_for_a_fresh_window(margin_s: float = 20.0) -> None:
    """Budgets count in fixed one-minute windows: start a burst with ``margin_s`` left in one."""
    left = 60 - time.time() % 60
    if left < margin_s:
        time.sleep(left + 0.2)


def bring_up(replicated: ReplicatedLab, services: str) -> dict[str, dict[str, Any]]:
    """``lab up --replicas 3 -s <services>`` through the CLI; the services it reports."""
    code, out, err = cli(
        replicated.env, "lab", "up", "--replicas", "3", "-s", services, "-o", "json"
    )
    assert code == 0, err
    return {row["name"]: row for row in json.loads(out)["services"]}


def replica_ports_of(statuses: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {n: int(statuses[n]["port"]) for n in TIER[2:]}


def test_replicated_lab_up_status_balance_block_down(replicated: ReplicatedLab) -> None:
    env = replicated.env
    started = bring_up(replicated, "prometheus,gateway,traffic")
    assert list(started) == ["prometheus", *TIER, "traffic"], started

    # Status without the flag sees the replicas; each on a port of its own, NGINX on the URL's.
    now = lab_status(env)
    assert [n for n in now if n in TIER or n == "gateway"] == TIER
    for name in ["prometheus", *TIER, "traffic"]:
        assert now[name]["state"] == "running" and now[name]["pid"] == started[name]["pid"], now
    gateway_port = int(replicated.gateway_url.rsplit(":", 1)[1])
    assert now["nginx"]["port"] == gateway_port
    replica_ports = replica_ports_of(now)
    assert len({gateway_port, now["policy"]["port"], *replica_ports.values()}) == 2 + REPLICAS
    recorded = json.loads((replicated.run_dir / "lab" / "replicas.json").read_text())
    assert recorded == {"ports": list(replica_ports.values())}

    # A second `lab up` without --replicas keeps them (and says so); a single one is refused.
    code, out, err = cli(env, "lab", "up", "-s", "prometheus,gateway,traffic", "-o", "json")
    assert code == 0, err
    assert "keeping the lab's 3 gateway replicas" in err
    assert {r["name"]: r["pid"] for r in json.loads(out)["services"]} == {
        n: r["pid"] for n, r in started.items()
    }, "a second lab up restarted a service"
    code, out, err = cli(env, "lab", "up", "--replicas", "1", "-s", "gateway")
    assert code != 0 and "lab down -s gateway" in err and len(err.strip().splitlines()) == 1, err

    with httpx.Client(base_url=replicated.gateway_url, timeout=10, trust_env=False) as http:
        # Through NGINX: answered, by more than one replica.
        answers = [infer(http, replicated.model, "spread").status_code for _ in range(30)]
        assert answers == [200] * 30
        per_replica = answered_by_replica(replica_ports, "spread")
        assert sum(per_replica.values()) == 30, per_replica
        assert sum(1 for n in per_replica.values() if n > 0) > 1, per_replica
        assert infer(http, replicated.model, "").status_code in (400, 401)  # no identity

        # The lab's own clients accept NGINX as the lab's gateway (guard: a service it started).
        code, out, err = cli(
            env,
            "lab",
            "traffic",
            "--clients",
            "2",
            "--duration",
            "2",
            "--max-requests",
            "6",
            "--model",
            replicated.model,
            "-o",
            "json",
        )
        assert code == 0, err
        outcomes = [row["outcomes"] for row in json.loads(out)["clients"].values()]
        assert sum(o["ok"] for o in outcomes) > 0, outcomes

        # Prometheus scrapes every replica (label `replica`) and the endpoint, not NGINX.
        prom = replicated.prometheus_url
        wait_for_result(prom, 'count(up{service="gateway"} == 1) == 3', 30)
        wait_for_result(prom, 'up{service="policy"} == 1', 30)
        rows = httpx.get(
            f"{prom}/api/v1/query", params={"query": 'up{service="gateway"}'}, trust_env=False
        ).json()["data"]["result"]
        assert sorted(r["metric"]["replica"] for r in rows) == TIER[2:]
        wait_for_result(prom, 'sum(aml_requests_total{client="spread",outcome="ok"}) == 30', 30)
        # The benign traffic service goes through NGINX too, and is answered.
        wait_for_result(prom, 'sum(aml_lab_traffic_requests_total{outcome="ok"}) > 0', 30)
        wait_for_result(prom, 'sum(aml_requests_total{client!="spread",outcome="ok"}) > 0', 30)

        # A block reaches NGINX at once: the next requests get 403 with the block's id.
        assert infer(http, replicated.model, "b").status_code == 200
        run_runbook(env, "block-client", "client=b", "reason=replica test secret-reason")
        started_at = time.monotonic()
        refused = infer(http, replicated.model, "b")
        while refused.status_code == 200 and time.monotonic() - started_at < 10:
            time.sleep(0.05)
            refused = infer(http, replicated.model, "b")
        log.info("block -> first 403 through nginx: %.3f s", time.monotonic() - started_at)
        assert refused.status_code == 403, refused.text
        assert re.fullmatch(r"blk-[0-9a-f]{12}", refused.headers["X-AML-Block-Id"])
        assert "secret-reason" not in refused.text
        # Three replicas export the block; the blocked-clients count counts the client once.
        wait_for_result(prom, "aml:blocked_clients:count == 1", 40)

    # Down stops every process of the tier and forgets the replicas.
    pids = {n: int(now[n]["pid"]) for n in ["prometheus", *TIER, "traffic"]}
    code, out, err = cli(env, "lab", "down")
    assert code == 0, err
    assert {
        n: processes.group_members(p) for n, p in pids.items() if processes.group_members(p)
    } == {}
    assert not (replicated.run_dir / "lab" / "replicas.json").exists()
    after = lab_status(env)
    assert not set(TIER) & set(after) and after["gateway"]["state"] == "stopped", after
    assert not any(process.port_open(p) for p in [gateway_port, *replica_ports.values()])


def test_one_budget_across_three_replicas(replicated: ReplicatedLab) -> None:
    """lower-query-budget qpm=20, then 60 requests in one window through NGINX: 20 answered in
    total (each replica's own counter), 40 refused with 429 and Retry-After; not 3 x 20."""
    replica_ports = replica_ports_of(bring_up(replicated, "gateway"))
    run_runbook(replicated.env, "lower-query-budget", "client=z", "qpm=20")
    wait_for_a_fresh_window()
    with httpx.Client(base_url=replicated.gateway_url, timeout=10, trust_env=False) as http:
        first_at = time.time()
        burst = [infer(http, replicated.model, "z") for _ in range(60)]
    assert first_at // 60 == time.time() // 60, "the burst straddled two budget windows"
    codes = [r.status_code for r in burst]
    assert (codes.count(200), codes.count(429)) == (20, 40), codes
    assert all(int(r.headers["Retry-After"]) >= 1 for r in burst if r.status_code == 429)
    per_replica = answered_by_replica(replica_ports, "z")
    assert sum(per_replica.values()) == 20, per_replica
    assert sum(1 for n in per_replica.values() if n > 0) > 1, per_replica


def isolated_settings_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    run_dir = tmp_path / "run"
    ports = {name: free_port() for name in ("redis", "mlflow", "alertmanager", "prometheus")}
    config_path = run_dir / "config.toml"
    write_test_config(config_path, lab_config(run_dir, ports, services=("redis",)))
    return config_path, cli_env(config_path)


def test_replicas_refused_without_the_gateway_or_out_of_range(tmp_path: Path) -> None:
    config_path, _ = isolated_settings_env(tmp_path)
    runner = CliRunner()
    for args, message in (
        (["--replicas", "3", "-s", "redis"], "--replicas needs the gateway"),
        (["--replicas", "99", "-s", "gateway"], "--replicas must be 1"),
    ):
        result = runner.invoke(app, ["--config", str(config_path), "lab", "up", *args])
        assert result.exit_code != 0 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "lab" / "replicas.json").exists()


def test_policy_endpoint_config_is_the_launchers_resolved_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policy service reads a TOML of the launcher's settings: what it would load must be
    what the launcher resolved (paths absolute, [policy_endpoint] completed from [gateway])."""
    config_path, _ = isolated_settings_env(tmp_path)
    monkeypatch.setenv("CONSOLE_GATEWAY__DEFAULT_QPM", "42")
    monkeypatch.setenv("CONSOLE_GATEWAY__REDIS_FAILURE_MODE", "closed")
    monkeypatch.setenv("CONSOLE_REDIS__KEY_PREFIX", 'odd"prefix\\x')
    settings = load_settings(config_path)
    tier = replica_specs.Replicas((free_port(), free_port()))
    spec = replica_specs.build(settings, tier, "policy", check=False)
    toml_path = next(p for p in spec.files if p.suffix == ".toml")
    parsed = tomllib.loads(spec.files[toml_path])
    assert parsed["redis"]["key_prefix"] == 'odd"prefix\\x'
    assert parsed["policy_endpoint"]["default_qpm"] == 42
    assert parsed["policy_endpoint"]["redis_failure_mode"] == "closed"
    assert parsed["run_dir"] == str((tmp_path / "run").resolve())
    listen = f"127.0.0.1:{settings.lab.policy_port}"
    assert spec.argv[2:] == [
        "console",
        "--config",
        str(toml_path),
        "policy",
        "serve",
        "--listen",
        listen,
    ]
    assert spec.console_env is False
    for key in [k for k in os.environ if k.startswith("CONSOLE_")]:
        monkeypatch.delenv(key)
    write_test_config(tmp_path / "policy.toml", spec.files[toml_path])
    child = load_settings(tmp_path / "policy.toml")
    assert child.policy_endpoint.default_qpm == 42 and child.redis.key_prefix == 'odd"prefix\\x'
