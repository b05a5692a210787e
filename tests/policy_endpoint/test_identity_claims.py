"""Who a decision is for, when the caller chooses its own headers (the review's finding): a
bearer key is an identity and wins over a claimed X-Client-Id, so a blocked key holder cannot
dodge its block by naming itself afresh; a claim shaped like a key's pseudonym or a reserved
label is refused, so nobody can spend a key holder's budget or be logged as them; and with
``client_header = ""`` only keys identify. Against the served endpoint and the real runbooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policy_support import endpoint_env, serving, wait_until

KEY = "sk-live-blocked-holder-0001"


def test_a_blocked_key_holder_stays_blocked_whatever_id_it_claims(lab: Any, tmp_path: Path) -> None:
    env, prefix = endpoint_env(lab.config_path, tmp_path / "run")
    with serving(env, prefix, tmp_path) as endpoint, endpoint.client() as http:
        bearer = {"Authorization": f"Bearer {KEY}"}
        holder = http.get("/v1/decision", headers=bearer).headers["X-AML-Client"]
        assert holder.startswith("key-")
        endpoint.runbook("block-client", client=holder, ttl="10m", reason="extraction")

        def blocked() -> bool:
            return http.get("/v1/decision", headers=bearer).status_code == 403

        assert wait_until(blocked, 2.0) is not None
        dodge = http.get("/v1/decision", headers={**bearer, "X-Client-Id": "fresh-id-1"})
        assert dodge.status_code == 403 and dodge.headers["X-AML-Client"] == holder

        # Nobody may claim the holder's pseudonym (or the gateways' labels) to be logged or
        # counted as them; an honest claim still works.
        for claim in (holder, holder.upper(), "other", "unknown"):
            answer = http.get("/v1/decision", headers={"X-Client-Id": claim})
            assert answer.status_code == 401, claim
        assert http.get("/v1/decision", headers={"X-Client-Id": "alice"}).status_code == 200


def test_keys_only_when_the_client_header_is_off(lab: Any, tmp_path: Path) -> None:
    env, prefix = endpoint_env(lab.config_path, tmp_path / "run")
    env["CONSOLE_POLICY_ENDPOINT__CLIENT_HEADER"] = ""
    with serving(env, prefix, tmp_path) as endpoint, endpoint.client() as http:
        assert http.get("/v1/decision", headers={"X-Client-Id": "alice"}).status_code == 401
        keyed = http.get("/v1/decision", headers={"Authorization": f"Bearer {KEY}"})
        assert keyed.status_code == 200 and keyed.headers["X-AML-Client"].startswith("key-")
