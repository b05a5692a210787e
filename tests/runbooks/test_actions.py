"""Each action type's plan, apply and compensate against the real Redis, MLflow, Alertmanager."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from runbook_support import Console

from console.adapters.backends import Backends
from console.errors import BackendResponseError, BackendUnavailable, ParameterError
from console.lab.seed import SeededModel
from console.runbooks.actions import ACTIONS, ActionContext

T = TypeVar("T")


@asynccontextmanager
async def context(console: Console) -> AsyncIterator[ActionContext]:
    backends = Backends(console.settings)
    try:
        yield ActionContext(
            console.settings, backends, "run-test", "tester", console.run_dir / "runs" / "run-test"
        )
    finally:
        await backends.aclose()


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def cycle(ctx: ActionContext, name: str, raw: dict[str, Any]) -> tuple[Any, Any, Any]:
    """plan -> apply -> compensate; returns (plan, after, state after compensation)."""
    action = ACTIONS[name]
    args = action.Args.model_validate(raw)
    plan = await action.plan(args, ctx)
    after = await action.apply(args, ctx, plan)
    restored = await action.compensate(args, ctx, plan.before, after)
    return plan, after, restored


def test_block_and_unblock(console: Console) -> None:
    async def go() -> None:
        async with context(console) as ctx:
            store = ctx.backends.policy
            plan, after, restored = await cycle(
                ctx, "policy.block_client", {"client": "a1", "ttl": "5m", "reason": "r"}
            )
            assert plan.before is None and not plan.noop and after["reason"] == "r"
            assert restored is None and await store.get_block("a1") is None
            # An existing block is restored exactly, expiry included, after an extension.
            original = await store.block("a1", timedelta(minutes=10), "first", "op", "run-0")
            plan, after, restored = await cycle(
                ctx, "policy.block_client", {"client": "a1", "ttl": "1h", "reason": "longer"}
            )
            assert plan.before["reason"] == "first" and after["reason"] == "longer"
            again = await store.get_block("a1")
            assert again is not None and again.expires_at == original.expires_at
            assert again.reason == "first"
            plan, _, restored = await cycle(ctx, "policy.unblock_client", {"client": "a1"})
            assert plan.before["reason"] == "first" and restored["reason"] == "first"
            noop = await ACTIONS["policy.unblock_client"].plan(
                ACTIONS["policy.unblock_client"].Args.model_validate({"client": "nobody"}), ctx
            )
            assert noop.noop

    run(go())


def test_budgets(console: Console) -> None:
    async def go() -> None:
        async with context(console) as ctx:
            store = ctx.backends.policy
            plan, after, restored = await cycle(
                ctx, "policy.set_budget", {"client": "b1", "qpm": 50}
            )
            assert plan.before is None and after["qpm"] == 50 and restored is None
            await store.set_budget("b1", 600, "op", "run-0")
            plan, after, restored = await cycle(
                ctx, "policy.set_budget", {"client": "b1", "qpm": 5}
            )
            assert after["previous_qpm"] == 600 and restored["qpm"] == 600
            set_ = ACTIONS["policy.set_budget"]
            args = set_.Args.model_validate({"client": "b1", "qpm": 5})
            await set_.apply(args, ctx, await set_.plan(args, ctx))
            plan, after, restored = await cycle(ctx, "policy.restore_budget", {"client": "b1"})
            assert "restore the budget of b1 to 600 qpm" in plan.summary
            assert after["qpm"] == 600 and restored["qpm"] == 5

    run(go())


def test_set_alias_and_rollback(console: Console, seeded_model: SeededModel) -> None:
    name, champion, previous = seeded_model.name, seeded_model.champion, seeded_model.previous

    async def go() -> None:
        async with context(console) as ctx:
            registry = ctx.backends.registry
            plan, after, restored = await cycle(
                ctx, "registry.set_alias", {"model": name, "alias": "candidate", "version": "1"}
            )
            assert plan.before == {"model": name, "alias": "candidate", "version": None}
            assert after["version"] == "1"
            assert restored["version"] is None
            assert await registry.get_alias(name, "candidate") is None
            plan, after, restored = await cycle(ctx, "registry.rollback", {"model": name})
            assert (plan.before["version"], after["version"]) == (champion, previous)
            assert restored["version"] == champion
            assert await registry.get_alias(name, "champion") == champion
            with pytest.raises(ParameterError, match="has no version 99"):
                await ACTIONS["registry.set_alias"].plan(
                    ACTIONS["registry.set_alias"].Args.model_validate(
                        {"model": name, "alias": "candidate", "version": "99"}
                    ),
                    ctx,
                )

    run(go())


def test_silence_and_expire(console: Console) -> None:
    alertname = f"AMLTest{console.settings.redis.key_prefix}"

    async def go() -> None:
        async with context(console) as ctx:
            am = ctx.backends.alertmanager
            raw = {"alertname": alertname, "labels": {"client": "m1"}, "duration": "10m"}
            plan, after, restored = await cycle(ctx, "alertmanager.silence", raw)
            assert plan.before == {"active_silences": []}
            silence = await am.get_silence(after["silence_id"])
            assert silence is not None and silence.state == "expired"
            assert restored == {"expired": [after["silence_id"]]}
            # expire_silence: expire the active one, compensation recreates it.
            silence_action = ACTIONS["alertmanager.silence"]
            args = silence_action.Args.model_validate(raw)
            created = await silence_action.apply(args, ctx, await silence_action.plan(args, ctx))
            match = {"alertname": alertname, "labels": {"client": "m1"}}
            plan, after, restored = await cycle(ctx, "alertmanager.expire_silence", match)
            assert [s["id"] for s in plan.before["active_silences"]] == [created["silence_id"]]
            assert after == {"expired": [created["silence_id"]]}
            assert len(restored["recreated"]) == 1
            active = await am.active_silences(silence_action.Args.model_validate(raw).matchers())
            assert [s.id for s in active] == restored["recreated"]

    run(go())


def test_evidence_capture_writes_hashed_files(console: Console) -> None:
    async def go() -> None:
        async with context(console) as ctx:
            _, after, _ = await cycle(ctx, "evidence.capture", {"client": "e1", "model": "digits"})
            folder = ctx.run_dir / "evidence"
            assert set(after["files"]) == {"alerts.json", "policy.json", "registry.json"}
            assert (folder / "manifest.json").is_file() and after["errors"] == {}
            import hashlib

            for name, digest in after["files"].items():
                assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest

    run(go())


def test_retries_only_for_errors_that_may_pass() -> None:
    from console.adapters.retry import with_retries

    def flaky(errors: list[Exception]) -> Callable[[], Awaitable[str]]:
        async def call() -> str:
            if errors:
                raise errors.pop(0)
            return "ok"

        return call

    calls = [BackendUnavailable("down"), BackendResponseError("x", "am", 503)]
    assert asyncio.run(with_retries(flaky(calls), 2, base_delay_s=0.001)) == "ok"
    for status in (400, 404, 409, 422):
        left = [BackendResponseError("bad", "am", status)]
        with pytest.raises(BackendResponseError):
            asyncio.run(with_retries(flaky(left), 3, base_delay_s=0.001))
    many = [BackendUnavailable("down") for _ in range(5)]
    with pytest.raises(BackendUnavailable):
        asyncio.run(with_retries(flaky(many), 2, base_delay_s=0.001))
    assert len(many) == 2  # 1 try + 2 retries, then it gives up
