"""The output-hardening actions' plan, apply and compensate against the real Redis: a new
hardening is undone to none, an existing one is put back exactly (mode, expiry, id) after it
was replaced or lifted, and bad arguments are refused before anything is written."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from runbook_support import Console

from console.adapters.backends import Backends
from console.runbooks.actions import ACTIONS, ActionContext


async def _cycle(ctx: ActionContext, name: str, raw: dict[str, Any]) -> tuple[Any, Any, Any]:
    action = ACTIONS[name]
    args = action.Args.model_validate(raw)
    plan = await action.plan(args, ctx)
    after = await action.apply(args, ctx, plan)
    restored = await action.compensate(args, ctx, plan.before, after)
    return plan, after, restored


def test_harden_and_unharden_compensate_to_what_was_there(console: Console) -> None:
    async def go() -> None:
        backends = Backends(console.settings)
        ctx = ActionContext(
            console.settings, backends, "run-test", "tester", console.run_dir / "runs" / "r"
        )
        store = backends.policy
        try:
            raw = {"client": "h1", "mode": "label-only", "ttl": "5m"}
            plan, after, restored = await _cycle(ctx, "policy.harden_outputs", raw)
            assert plan.before is None and not plan.noop
            assert "harden the outputs of h1 to label-only for 5m" in plan.summary
            assert after["mode"] == "label-only" and after["operator"] == "tester"
            assert restored is None and await store.get_hardening("h1") is None

            original = await store.harden("h1", "top1", 2, timedelta(minutes=10), "op", "run-0")
            raw = {"client": "h1", "mode": "rounded", "decimals": 3, "ttl": "1h"}
            plan, after, restored = await _cycle(ctx, "policy.harden_outputs", raw)
            assert "top1 until" in plan.summary and "rounded to 3 decimals" in plan.summary
            assert after["mode"] == "rounded" and after["decimals"] == 3
            back = await store.get_hardening("h1")
            assert back is not None and back == original  # mode, expiry and id as they were

            plan, after, restored = await _cycle(ctx, "policy.unharden_outputs", {"client": "h1"})
            assert plan.before["mode"] == "top1" and after is None
            assert restored["id"] == original.id
            lifted = ACTIONS["policy.unharden_outputs"]
            await lifted.apply(lifted.Args.model_validate({"client": "h1"}), ctx, plan)
            assert await store.get_hardening("h1") is None
            noop = await lifted.plan(lifted.Args.model_validate({"client": "h1"}), ctx)
            assert noop.noop and "gets full answers already" in noop.summary
        finally:
            await backends.aclose()

    asyncio.run(go())


@pytest.mark.parametrize(
    "raw",
    [
        {"client": "h2", "mode": "blur", "ttl": "1h"},
        {"client": "h2", "mode": "rounded", "decimals": 9, "ttl": "1h"},
        {"client": "h2", "mode": "top1", "ttl": "10s"},
        {"client": "bad id!", "mode": "top1", "ttl": "1h"},
    ],
)
def test_bad_hardening_arguments_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ACTIONS["policy.harden_outputs"].Args.model_validate(raw)
