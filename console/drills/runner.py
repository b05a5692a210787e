"""Run a drill: launch the scenario's attack against the lab, watch the real systems once a
second (the gateway's counters, Alertmanager, the audit log, the policy store, the benign
clients' own view), respond with the scenario's runbooks (``auto``) or let a person respond
from the TUI (``human``: the drill keeps the clock), and score the run.

A drill never imports Textual; the CLI and the TUI call the same code. Its attacks are the lab's
(loopback only, bounded, seeded); its responses are real runbook runs through the same engine
and audit log as any other.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from console.adapters.alertmanager import Alert
from console.adapters.backends import Backends
from console.config import Settings
from console.drills.attacks import run_attack
from console.drills.gate import check_gate
from console.drills.incident import drill_incident
from console.drills.observe import Counts, Observation, Observer, audit_since
from console.drills.report_data import DrillReport, DrillScores, TimelineEvent
from console.drills.scenario import LoadedScenario, ResponseSpec, Scenario
from console.drills.scores import (
    attacker_success,
    benign_error_rate,
    contained_at,
    detection_floor,
    series,
    since,
    success_metric,
)
from console.errors import ConsoleError, DrillError
from console.runbooks.template import TemplateError, render

Responder = Literal["auto", "human"]
EventSink = Callable[[TimelineEvent], None]
POLL_S = 1.0
MITIGATING_RESULTS = ("ok",)
MITIGATING_ACTIONS = (
    "policy.block_client",
    "policy.set_budget",
    "registry.rollback",
    "registry.set_alias",
)
"""Actions that stop an attacker or undo its effect; evidence capture and silences do not."""


def _ignore(event: TimelineEvent) -> None:
    return None


@dataclass
class _State:
    """What the watch loop has seen so far."""

    t0: float
    started_at: datetime
    attacker: str
    model: str
    timeline: list[TimelineEvent] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    first_request_s: float | None = None
    detected_s: float | None = None
    mitigated_s: float | None = None
    contained_s: float | None = None
    answered_at_containment: float | None = None
    responded: set[str] = field(default_factory=set)
    known_alerts: set[str] = field(default_factory=set)
    false_alerts: set[str] = field(default_factory=set)
    benign_blocked: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 3)


class DrillRunner:
    def __init__(
        self,
        settings: Settings,
        loaded: LoadedScenario,
        responder: Responder = "auto",
        on_event: EventSink = _ignore,
        rules_dir: Path | None = None,
        wait_quiet_s: float = 0.0,
    ) -> None:
        self.settings = settings
        self.wait_quiet_s = wait_quiet_s
        self.scenario: Scenario = loaded.scenario
        self.responder = responder
        self.on_event = on_event
        self.rules_dir = rules_dir
        self.drill_id = (
            f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{self.scenario.name}-{secrets.token_hex(3)}"
        )
        # Each run its own attacker id: no series, detector window, policy or silence of an
        # earlier run can make this one look detected or contained.
        self.attacker = f"{self.scenario.attack.client}-{self.drill_id[-6:]}"
        self.model = self.scenario.attack.model or settings.models.served[0]

    # ---------------------------------------------------------------------------------------
    async def run(self) -> DrillReport:
        if self.settings.read_only and self.responder == "auto":
            raise DrillError(
                "read-only mode: the scripted responder cannot act (use "
                "--responder human, or leave read-only mode)"
            )
        backends = Backends(self.settings)
        observer = Observer(backends, self.model)
        state = _State(time.monotonic(), datetime.now(UTC), self.attacker, self.model)
        try:
            baseline = await observer.observe(0.0)
            if not baseline.gateway and baseline.errors:
                raise DrillError(
                    f"the lab gateway does not answer ({baseline.errors[0]}): "
                    "start the lab with `aml-console lab up`"
                )
            baseline = await self._quiet(observer, baseline)
            state.known_alerts = {a.fingerprint for a in baseline.alerts}
            before_version = baseline.served_version
            self._event(
                state,
                "drill-start",
                f"scenario {self.scenario.name}, attacker "
                f"{self.attacker}, responder {self.responder}, serving "
                f"{self.model} v{before_version}",
            )
            attack = asyncio.create_task(self._attack(state))
            responses: list[asyncio.Task[None]] = []
            try:
                await self._watch(state, observer, backends, attack, responses, before_version)
            finally:
                for task in [attack, *responses]:
                    if not task.done():
                        task.cancel()
                await asyncio.gather(attack, *responses, return_exceptions=True)
            reports = (
                attack.result()
                if attack.done() and not attack.cancelled() and attack.exception() is None
                else []
            )
            if attack.done() and not attack.cancelled() and attack.exception() is not None:
                state.errors.append(f"attack failed: {attack.exception()}")
            self._event(state, "drill-end", "")
            return drill_incident(self, self._report(state, backends, reports))
        finally:
            await observer.aclose()
            await backends.aclose()

    def _expected(self, alert: Alert) -> bool:
        detect = self.scenario.detect
        scope = {"attacker": self.attacker, "model": self.model}
        expected = {k: str(render(v, scope)) for k, v in detect.match.items()}
        return alert.labels.get("alertname") == detect.alertname and all(
            alert.labels.get(k) == v for k, v in expected.items()
        )

    async def _quiet(self, observer: Observer, baseline: Observation) -> Observation:
        """The expected alert must not be firing already (a per-model alert left by an earlier
        run or a real incident): the drill could not tell its own detection from it, and the
        responder would act on someone else. Wait up to ``wait_quiet_s`` for it to resolve."""
        deadline = time.monotonic() + self.wait_quiet_s
        while True:
            firing = [a for a in baseline.alerts if a.state in ("active", "") and self._expected(a)]
            if not firing:
                return baseline
            if time.monotonic() >= deadline:
                since = firing[0].startsAt.isoformat() if firing[0].startsAt else "?"
                raise DrillError(
                    f"{self.scenario.detect.alertname} {_labels(firing[0])} is already firing "
                    f"(since {since}): the drill could not tell its own detection from it; "
                    "wait until it resolves (or pass --wait-quiet SECONDS)"
                )
            await asyncio.sleep(POLL_S * 5)
            baseline = await observer.observe(0.0)

    # ---------------------------------------------------------------------------------------
    async def _attack(self, state: _State) -> list[dict[str, Any]]:
        spec = self.scenario.attack
        await asyncio.sleep(spec.start_after)
        reports = []
        for round_no in range(1, spec.rounds + 1):
            if state.contained_s is not None:
                break
            self._event(state, "attack-launched", f"{spec.kind} round {round_no}/{spec.rounds}")
            report = await run_attack(
                self.settings, spec.kind, self.attacker, self.model, spec.args
            )
            reports.append(report)
            if self.scenario.gate is not None:
                scope = {"model": self.model, "attacker": self.attacker, "attack": report}
                gate = await check_gate(self.settings, self.scenario.gate, scope)
                self._event(state, gate.kind, gate.detail)
                state.errors.extend([gate.problem] if gate.problem else [])
            self._event(
                state,
                "attack-finished",
                f"round {round_no}: stopped {report.get('run', {}).get('stopped', '?')}",
            )
            if round_no < spec.rounds:
                await asyncio.sleep(spec.pause)
        return reports

    async def _watch(
        self,
        state: _State,
        observer: Observer,
        backends: Backends,
        attack: asyncio.Task[list[dict[str, Any]]],
        responses: list[asyncio.Task[None]],
        before_version: str | None,
    ) -> None:
        deadline = self.scenario.timeout
        attack_done_at: float | None = None
        while True:
            await asyncio.sleep(POLL_S)
            obs = await observer.observe(state.now())
            state.observations.append(obs)
            self._see_version(state, obs)
            for error in obs.errors:
                if error not in state.errors:
                    state.errors.append(error)
            self._see_requests(state, obs)
            fired = self._see_alerts(state, obs)
            if self.responder == "auto":
                for response in self.scenario.respond:
                    if response.alert in fired and response.alert not in state.responded:
                        state.responded.add(response.alert)
                        alert = fired[response.alert]
                        responses.append(
                            asyncio.create_task(self._respond(state, backends, response, alert))
                        )
            await self._see_mitigation(state, backends)
            self._see_containment(state, obs, before_version)
            if attack.done() and attack_done_at is None:
                attack_done_at = obs.at
            pending = any(not r.done() for r in responses)
            if state.contained_s is not None and attack.done() and not pending:
                return
            # A swapped model stays swapped after its attack ends: wait for containment.
            lasting = self.scenario.contained.served_version is not None
            quiet = attack_done_at is not None and obs.at - attack_done_at > 10
            if quiet and not (pending or lasting):
                return  # the attack stopped by itself and nothing else is coming
            if obs.at >= deadline:
                self._event(state, "timeout", f"{deadline:g} s")
                return

    def _see_requests(self, state: _State, obs: Observation) -> None:
        counts = obs.gateway.get(self.attacker)
        if state.first_request_s is None and counts is not None and counts.total > 0:
            state.first_request_s = obs.at
            self._event(state, "first-request", f"{counts.total:g} requests at the gateway", obs.at)
        benign = set(obs.traffic) - {self.attacker}
        for client in sorted(obs.blocked_clients & benign):
            if client not in state.benign_blocked:
                state.benign_blocked.add(client)
                self._event(state, "benign-blocked", client)

    def _see_version(self, state: _State, obs: Observation) -> None:
        seen = [o.served_version for o in state.observations[:-1] if o.served_version]
        if obs.served_version and seen and obs.served_version != seen[-1]:
            self._event(state, "served-version", f"{self.model} v{obs.served_version}", obs.at)

    def _see_alerts(self, state: _State, obs: Observation) -> dict[str, Alert]:
        """The scenario's expected alert (and every response trigger) firing now, by name;
        new alerts about any other client are false alerts."""
        fired: dict[str, Alert] = {}
        for alert in obs.alerts:
            if alert.state not in ("active", ""):
                continue
            name = alert.labels.get("alertname", "")
            about_attacker = alert.labels.get("client") in (None, self.attacker)
            new = alert.fingerprint not in state.known_alerts
            if self._expected(alert):
                fired[name] = alert
                if state.detected_s is None:
                    state.detected_s = obs.at
                    self._event(state, "alert-firing", f"{name} {_labels(alert)}", obs.at)
            elif name in {r.alert for r in self.scenario.respond} and about_attacker and new:
                fired.setdefault(name, alert)
            if new and not about_attacker and alert.fingerprint not in state.false_alerts:
                state.false_alerts.add(alert.fingerprint)
                self._event(state, "false-alert", f"{name} {_labels(alert)}")
        return fired

    async def _respond(
        self, state: _State, backends: Backends, response: ResponseSpec, alert: Alert
    ) -> None:
        from console.runbooks.engine import RunbookEngine
        from console.runbooks.loader import find_runbook

        await asyncio.sleep(response.delay)
        try:
            params = await self._response_params(backends, response, alert)
            loaded = find_runbook(response.runbook, self.settings.runbook_search_path)
            engine = RunbookEngine(self.settings)
            self._event(state, "response-started", f"{response.runbook} {params}")
            plan = await engine.plan(loaded, params)
            run = await engine.run(plan, confirmed=True)
        except ConsoleError as exc:
            state.errors.append(f"responder: {response.runbook}: {exc}")
            self._event(state, "response-finished", f"{response.runbook}: refused: {exc}")
            return
        self._event(state, "response-finished", f"{response.runbook} {run.run_id}: {run.status}")

    async def _response_params(
        self, backends: Backends, response: ResponseSpec, alert: Alert
    ) -> dict[str, str]:
        scope = {"labels": dict(alert.labels), "attacker": self.attacker, "model": self.model}
        params: dict[str, str] = {}
        for name, value in response.params.items():
            if isinstance(value, dict) and "query" in value:
                expr = str(render(value["query"], scope))
                result = await backends.prometheus.query(expr)
                label = str(value.get("label", name))
                if not result.samples:
                    raise DrillError(f"responder: {expr} found no series for {name}")
                top = max(result.samples, key=lambda s: s.value)
                params[name] = top.metric.get(label, "")
            else:
                try:
                    params[name] = str(render(value, scope))
                except TemplateError as exc:
                    raise DrillError(f"responder: parameter {name}: {exc}") from None
        return params

    async def _see_mitigation(self, state: _State, backends: Backends) -> None:
        if state.mitigated_s is not None:
            return
        targets = {f"client:{self.attacker}", f"model:{self.model}"}
        try:
            records = await asyncio.to_thread(audit_since, backends, state.started_at)
        except ConsoleError as exc:
            if str(exc) not in state.errors:
                state.errors.append(str(exc))
            return
        for record in records:
            applied = record.kind == "step-outcome" and record.result in MITIGATING_RESULTS
            if applied and record.target in targets and record.action in MITIGATING_ACTIONS:
                state.mitigated_s = round((record.time - state.started_at).total_seconds(), 3)
                self._event(
                    state,
                    "mitigation",
                    f"{record.runbook}/{record.step} {record.action} by "
                    f"{record.operator} (run {record.run_id})",
                    at=state.mitigated_s,
                )
                return

    def _see_containment(self, state: _State, obs: Observation, before_version: str | None) -> None:
        if state.contained_s is not None:
            return
        contained = self.scenario.contained
        if contained.served_version is not None:
            target = (
                before_version if contained.served_version == "before" else contained.served_version
            )
            # Contained once the served version is back, after the attack changed it.
            changed = any(o.served_version not in (None, target) for o in state.observations)
            if changed and obs.served_version == target:
                self._contain(state, obs, f"serving {self.model} v{target} again")
            return
        if len(state.observations) < 2 or contained.refused_share is None:
            return
        now, before = (
            obs.gateway.get(self.attacker),
            state.observations[-2].gateway.get(self.attacker),
        )
        if now is None:
            return
        delta = now.minus(before or Counts())
        if delta.refused > 0 and delta.refused / delta.total >= contained.refused_share:
            self._contain(
                state,
                obs,
                f"{delta.refused:g} of {delta.total:g} attacker requests "
                "refused in the last second",
            )

    def _contain(self, state: _State, obs: Observation, why: str) -> None:
        """Seen refused now: the drill may end. With a refused share, the time reported is
        found with hindsight at the end (``_contained_at``)."""
        state.contained_s = obs.at
        counts = obs.gateway.get(self.attacker)
        state.answered_at_containment = counts.ok if counts else 0.0
        share = self.scenario.contained.refused_share
        self._event(state, "refused" if share is not None else "contained", why, obs.at)

    # ---------------------------------------------------------------------------------------
    def _event(self, state: _State, kind: str, detail: str, at: float | None = None) -> None:
        event = TimelineEvent(state.now() if at is None else at, kind, detail)
        state.timeline.append(event)
        self.on_event(event)

    def _report(
        self, state: _State, backends: Backends, attack_reports: list[dict[str, Any]]
    ) -> DrillReport:
        start = state.first_request_s
        last = state.observations[-1] if state.observations else None
        final = last.gateway.get(self.attacker) if last else None
        share = self.scenario.contained.refused_share
        if share is not None:
            # With hindsight: the watch loop ends the drill on a refused second, but the time
            # that counts is the first refusal after which the attacker stayed refused (an
            # attacker throttled with Retry-After may send nothing for a minute).
            held = contained_at(state.observations, self.attacker, share)
            state.contained_s = held.at if held else None
            state.answered_at_containment = held.ok if held else None
            if held is not None:
                state.timeline.append(
                    TimelineEvent(
                        held.at,
                        "contained",
                        f"refused from here on; {held.ok:g} attacker requests answered by then",
                    )
                )
        answered = (
            state.answered_at_containment
            if state.contained_s is not None
            else (final.ok if final else 0.0)
        )
        contained = state.contained_s is not None
        try:
            records = [r.model_dump(mode="json") for r in audit_since(backends, state.started_at)]
        except ConsoleError as exc:
            records, state.errors = [], [*state.errors, str(exc)]
        scores = DrillScores(
            contained=contained,
            time_to_detect_s=since(start, state.detected_s),
            time_to_mitigate_s=since(start, state.mitigated_s),
            time_to_contain_s=since(start, state.contained_s),
            detect_to_mitigate_s=since(state.detected_s, state.mitigated_s),
            detection_floor_s=detection_floor(self.scenario.detect.alertname, self.rules_dir),
            attacker_queries_answered=int(answered or 0),
            attacker_success=attacker_success(self.scenario.attack.kind, attack_reports),
            attacker_success_metric=success_metric(self.scenario.attack.kind),
            benign_blocked=len(state.benign_blocked),
            benign_error_rate=benign_error_rate(state.observations, self.attacker),
            false_alerts=len(state.false_alerts),
        )
        return DrillReport(
            id=self.drill_id,
            scenario=self.scenario.name,
            responder=self.responder,
            attacker=self.attacker,
            model=self.model,
            started_at=state.started_at.isoformat(),
            ended_at=datetime.now(UTC).isoformat(),
            scores=scores,
            timeline=sorted(state.timeline, key=lambda e: e.at_s),
            series=series(state.observations),
            attack_reports=attack_reports,
            audit=records,
            errors=state.errors,
        )


def _labels(alert: Alert) -> str:
    keys = ("client", "model", "version")
    return " ".join(f"{k}={alert.labels[k]}" for k in keys if k in alert.labels)
