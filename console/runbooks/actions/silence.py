"""Alertmanager silences: create one for an alert, or expire the ones that match."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from console.adapters.alertmanager import Matcher, Silence
from console.durations import Duration, format_duration
from console.runbooks.actions.base import Action, ActionArgs, ActionContext, StepPlan
from console.runbooks.resources import Resource

LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
MIN_SILENCE = timedelta(minutes=1)


class MatchArgs(ActionArgs):
    alertname: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_:.-]{0,127}$")
    labels: dict[str, str] = Field(default_factory=dict)
    """More equality matchers, e.g. {client: mallory-1}."""

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name, item in value.items():
            if not LABEL.fullmatch(name):
                raise ValueError(f"label name {name[:40]!r} is not valid")
            if len(str(item)) > 256 or not str(item).isprintable():
                raise ValueError(f"label {name}: value is too long or has control characters")
        return value

    def matchers(self) -> list[Matcher]:
        pairs = {"alertname": self.alertname, **self.labels}
        return [Matcher(name=k, value=str(v)) for k, v in sorted(pairs.items())]

    def describe(self) -> str:
        return ",".join(f"{m.name}={m.value}" for m in self.matchers())


class SilenceArgs(MatchArgs):
    duration: Duration
    comment: str = Field(default="silenced by aml-console", max_length=500)

    @field_validator("duration")
    @classmethod
    def _long_enough(cls, value: timedelta) -> timedelta:
        if value < MIN_SILENCE:
            raise ValueError(
                f"a silence lasts at least {format_duration(MIN_SILENCE)} "
                f"(got {format_duration(value)})"
            )
        return value


class _SilencesAction:
    """Mixed into the silence actions: each changes the silences with exactly one set of
    matchers (the alert name and the other labels)."""

    resource_args: ClassVar[tuple[str, ...]] = ("alertname", "labels")

    def changes(self, args: Mapping[str, Any]) -> list[Resource]:
        alertname = args.get("alertname")
        labels = args.get("labels") or {}
        if alertname is None or not isinstance(labels, Mapping):
            return []
        pairs = tuple(sorted((str(k), str(v)) for k, v in labels.items()))
        return [Resource("alert", str(alertname), pairs)]


def _brief(silence: Silence) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": [m.model_dump() for m in silence.matchers],
        "ends_at": silence.endsAt.isoformat(),
        "comment": silence.comment,
    }


class SilenceAlert(_SilencesAction, Action[SilenceArgs]):
    name = "alertmanager.silence"
    description = "Silence an alert (and optional labels) in Alertmanager for a while."
    Args = SilenceArgs
    idempotent = False  # each POST creates another silence

    async def plan(self, args: SilenceArgs, ctx: ActionContext) -> StepPlan:
        am = ctx.backends.alertmanager
        active = await am.active_silences(args.matchers())
        until = datetime.now(UTC) + args.duration
        covering = [s for s in active if s.endsAt >= until - timedelta(minutes=1)]
        noop = bool(covering)
        summary = (
            f"{args.describe()} is already silenced until {covering[0].endsAt:%H:%M:%S}Z "
            f"(silence {covering[0].id})"
            if noop
            else f"silence {args.describe()} for {format_duration(args.duration)}"
        )
        return StepPlan(
            summary=summary,
            before={"active_silences": [_brief(s) for s in active]},
            after={
                "silence_id": covering[0].id,
                "matchers": args.describe(),
                "ends_at": covering[0].endsAt.isoformat(),
            }
            if noop
            else {"matchers": args.describe(), "ends_at": until.isoformat()},
            noop=noop,
            requests=[
                f"POST {ctx.settings.alertmanager.url}/api/v2/silences "
                f"matchers={args.describe()} endsAt=now+{format_duration(args.duration)}"
            ],
        )

    def fingerprint(self, plan: StepPlan) -> Any:
        return sorted(s["id"] for s in plan.before["active_silences"])

    async def apply(self, args: SilenceArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        now = datetime.now(UTC)
        comment = f"{args.comment} {_marker(ctx)}"
        silence_id = await ctx.backends.alertmanager.create_silence(
            args.matchers(), now, now + args.duration, ctx.operator, comment
        )
        return {
            "silence_id": silence_id,
            "matchers": args.describe(),
            "ends_at": (now + args.duration).isoformat(),
        }

    async def compensate(
        self, args: SilenceArgs, ctx: ActionContext, before: Any, after: Any
    ) -> Any:
        # Only silences this run made (its marker is in their comment): after a crash the
        # outcome is unknown and ``after`` may lack the id, and a silence someone else made
        # must never be expired by our undo.
        am = ctx.backends.alertmanager
        ours = [
            s.id for s in await am.active_silences(args.matchers()) if _marker(ctx) in s.comment
        ]
        for silence_id in ours:
            await am.expire_silence(silence_id)
        return {"expired": ours}


def _marker(ctx: ActionContext) -> str:
    return f"(run {ctx.run_id})"


class ExpireSilences(_SilencesAction, Action[MatchArgs]):
    name = "alertmanager.expire_silence"
    description = "Expire the active silences whose matchers are exactly these."
    Args = MatchArgs

    async def plan(self, args: MatchArgs, ctx: ActionContext) -> StepPlan:
        active = await ctx.backends.alertmanager.active_silences(args.matchers())
        return StepPlan(
            summary=(
                f"no active silence for {args.describe()}"
                if not active
                else f"expire {len(active)} silence(s) of {args.describe()}"
            ),
            before={"active_silences": [_brief(s) for s in active]},
            after={"active_silences": []},
            noop=not active,
            requests=[
                f"DELETE {ctx.settings.alertmanager.url}/api/v2/silence/{s.id}" for s in active
            ],
        )

    def fingerprint(self, plan: StepPlan) -> Any:
        return sorted(s["id"] for s in plan.before["active_silences"])

    async def apply(self, args: MatchArgs, ctx: ActionContext, plan: StepPlan) -> Any:
        expired = []
        for silence in plan.before["active_silences"]:
            await ctx.backends.alertmanager.expire_silence(silence["id"])
            expired.append(silence["id"])
        return {"expired": expired}

    async def compensate(self, args: MatchArgs, ctx: ActionContext, before: Any, after: Any) -> Any:
        recreated = []
        now = datetime.now(UTC)
        for silence in before["active_silences"]:
            ends = datetime.fromisoformat(silence["ends_at"])
            if ends <= now:
                continue
            new_id = await ctx.backends.alertmanager.create_silence(
                [Matcher.model_validate(m) for m in silence["matchers"]],
                now,
                ends,
                ctx.operator,
                f"{silence['comment']} (restored by run {ctx.run_id})",
            )
            recreated.append(new_id)
        return {"recreated": recreated}
