"""Capture evidence: what the alerts, the policy store and the registry said, before acting."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import Field

from console.adapters.mlflow import ModelName
from console.adapters.policy import ClientId
from console.errors import AdapterError, RunbookError
from console.private_files import private_dir, write_private
from console.runbooks.actions.base import Action, ActionArgs, ActionContext, StepPlan


class EvidenceArgs(ActionArgs):
    client: ClientId | None = None
    model: ModelName | None = None
    alertname: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_:.-]{0,127}$")


class CaptureEvidence(Action[EvidenceArgs]):
    """Writes JSON files and a sha256 manifest under ``<run dir>/evidence/`` (files 0600,
    folders 0700: evidence is for the people on call, not for every account on the host).

    A source that is down is noted in the manifest instead of failing the step: evidence is
    best effort, and must not stop the containment that follows it.
    """

    name = "evidence.capture"
    description = "Save current alerts, policy state and registry state for the target."
    Args = EvidenceArgs

    async def plan(self, args: EvidenceArgs, ctx: ActionContext) -> StepPlan:
        folder = ctx.run_dir / "evidence"
        sources = (
            ["alerts"] + (["policy"] if args.client else []) + (["registry"] if args.model else [])
        )
        return StepPlan(
            summary=f"save {', '.join(sources)} to {folder}",
            before=None,
            after={"folder": str(folder), "sources": sources},
            requests=[f"GET {ctx.settings.alertmanager.url}/api/v2/alerts"]
            + ([f"GET redis policy of {args.client}"] if args.client else [])
            + ([f"GET mlflow model {args.model}"] if args.model else []),
        )

    async def apply(self, args: EvidenceArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        folder = ctx.run_dir / "evidence"
        collected: dict[str, Any] = {}
        errors: dict[str, str] = {}
        try:
            alerts = await ctx.backends.alertmanager.alerts()
            collected["alerts"] = [
                a.model_dump(mode="json") for a in alerts if _concerns(a.labels, args)
            ]
        except AdapterError as exc:
            errors["alerts"] = str(exc)
        if args.client:
            try:
                store = ctx.backends.policy
                block = await store.get_block(args.client)
                budget = await store.get_budget(args.client)
                collected["policy"] = {
                    "block": block.model_dump(mode="json") if block else None,
                    "budget": budget.model_dump(mode="json") if budget else None,
                }
            except AdapterError as exc:
                errors["policy"] = str(exc)
        if args.model:
            try:
                registry = ctx.backends.registry
                model = await registry.get_model(args.model)
                versions = await registry.list_versions(args.model) if model else []
                collected["registry"] = {
                    "model": model.model_dump(mode="json") if model else None,
                    "versions": [v.model_dump(mode="json") for v in versions],
                }
            except AdapterError as exc:
                errors["registry"] = str(exc)
        manifest: dict[str, Any] = {"run_id": ctx.run_id, "files": {}, "errors": errors}
        try:
            private_dir(ctx.run_dir)
            private_dir(folder)
            for name, content in collected.items():
                data = json.dumps(content, indent=2, sort_keys=True).encode()
                path = folder / f"{name}.json"
                write_private(path, data)
                manifest["files"][path.name] = hashlib.sha256(data).hexdigest()
            write_private(folder / "manifest.json", json.dumps(manifest, indent=2).encode())
        except OSError as exc:
            raise RunbookError(f"cannot write evidence to {folder}: {exc.strerror}") from None
        return {"folder": str(folder), "files": manifest["files"], "errors": errors}

    async def compensate(
        self, args: EvidenceArgs, ctx: ActionContext, before: Any, after: Any
    ) -> Any:
        return after  # evidence is kept whatever happens next


def _concerns(labels: dict[str, str], args: EvidenceArgs) -> bool:
    wanted = {"client": args.client, "model": args.model, "alertname": args.alertname}
    given = {k: v for k, v in wanted.items() if v}
    if not given:
        return True
    return any(labels.get(k) == v for k, v in given.items())
