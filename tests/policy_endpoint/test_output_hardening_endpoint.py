"""Output hardening at the policy endpoint: after the real ``harden-outputs`` runbook, the
served endpoint (``aml-console policy serve``) answers that client's 200s with ``X-AML-Output``
(the value an upstream honours), on both paths, and nobody else's; ``get mitigations`` lists
the hardening with its mode and expiry; ``unharden-outputs`` removes the header."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from policy_support import endpoint_env, serving, wait_until
from support import run_cli


def test_the_endpoint_sends_x_aml_output_for_a_hardened_client_only(
    lab: Any, tmp_path: Path
) -> None:
    env, prefix = endpoint_env(lab.config_path, tmp_path / "run")
    admin = redis.Redis.from_url(lab.settings.redis.url, decode_responses=True)
    try:
        with serving(env, prefix, tmp_path) as endpoint, endpoint.client() as http:

            def output(client: str, path: str = "/v1/decision") -> str | None:
                reply = http.get(path, headers={"X-Client-Id": client})
                assert reply.status_code == 200, reply.text
                return reply.headers.get("X-AML-Output")

            assert output("bob") is None
            endpoint.runbook("harden-outputs", client="bob", mode="label-only", ttl="2h")
            lag = wait_until(lambda: output("bob") == "label-only", 5.0)
            assert lag is not None, "the endpoint never sent X-AML-Output"
            assert output("bob", "/v1/decision/nginx/v2/models/digits/infer") == "label-only"
            assert output("carol") is None

            listed = run_cli(["get", "mitigations", "-o", "json"], env)
            assert listed.returncode == 0, listed.stderr
            rows = [r for r in json.loads(listed.stdout) if r["kind"] == "hardening"]
            assert len(rows) == 1
            row = rows[0]
            assert (row["client"], row["mode"], row["output"]) == (
                "bob",
                "label-only",
                "label-only",
            )
            expires = datetime.fromisoformat(row["expires_at"])
            left = expires - datetime.now(UTC)
            assert timedelta(hours=1, minutes=58) < left <= timedelta(hours=2)
            table = run_cli(["get", "mitigations"], env)
            assert "hardening" in table.stdout and "answers label-only" in table.stdout

            endpoint.runbook("harden-outputs", client="bob", mode="rounded", decimals="3")
            lag = wait_until(lambda: output("bob") == "rounded;decimals=3", 5.0)
            assert lag is not None, output("bob")

            endpoint.runbook("unharden-outputs", client="bob")
            lag = wait_until(lambda: output("bob") is None, 5.0)
            assert lag is not None, "the header stayed after unharden-outputs"
            listed = run_cli(["get", "mitigations", "-o", "json"], env)
            assert not [r for r in json.loads(listed.stdout) if r["kind"] == "hardening"]
    finally:
        admin.delete(*admin.keys(f"{prefix}:*") or ["-"])
        admin.close()
