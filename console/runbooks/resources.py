"""What a step changes (a client, a model, an alert's silences), and whether a target covers it.

A runbook's ``target`` names one or more resources (``client:acme``, ``model:digits``,
``alert:AMLExtractionSuspected``), separated by commas or given as a YAML list. Each action
knows which resources it changes; the run leases every one of them, and a resource the target
does not name is refused before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Resource:
    kind: str
    """client, model or alert."""
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    """For an alert's silences: the other matchers (sorted), e.g. (("client", "mallory-1"),)."""

    @property
    def key(self) -> str:
        """``client:acme``, ``alert:AMLExtractionSuspected{client=acme}``: the lease's name."""
        labels = ",".join(f"{k}={v}" for k, v in self.labels)
        return f"{self.kind}:{self.name}" + (f"{{{labels}}}" if labels else "")

    def covered_by(self, target: str) -> bool:
        """``target`` names this resource, or (for silences) contains it: ``alert:NAME`` covers
        any silence of that alert, and ``client:X`` a silence whose matchers include
        ``client=X`` (it only silences that client's alerts)."""
        if target == self.key:
            return True
        kind, sep, name = target.partition(":")
        if not sep or self.kind != "alert":
            return False
        if kind == "alert" and name == self.name:
            return True
        return dict(self.labels).get(kind) == name


def split_target(template: str) -> list[str]:
    """The resources a target template names (a template reference never holds a comma)."""
    return [part.strip() for part in template.split(",") if part.strip()]


def uncovered(resources: Iterable[Resource], targets: list[str]) -> list[Resource]:
    return [r for r in resources if not any(r.covered_by(t) for t in targets)]


def lease_names(targets: list[str], resources: Iterable[Resource]) -> list[str]:
    """What a run leases, in the order it takes them: its target and every resource it
    changes, sorted."""
    return sorted(set(targets) | {r.key for r in resources})
