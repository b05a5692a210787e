"""The Models view's clients panel: the selected model's clients, suspicious first. It is the
Clients view's selection (``fetch_clients``: the same rows, order and reasons, bounded reads)
for one model, so the two views never disagree about who matters."""

from __future__ import annotations

from dataclasses import dataclass, field

from console.adapters.backends import Backends
from console.views.clients import ClientRow, fetch_clients

MODEL_CLIENTS_SHOWN = 8


@dataclass(frozen=True)
class ModelClients:
    model: str
    rows: list[ClientRow]
    """The first ``MODEL_CLIENTS_SHOWN`` of the model's listed clients, in the view's order."""
    listed: int
    """How many of the model's clients the selection lists (the rest: on Clients)."""
    active: int | None = None
    """Active clients of every model (the engine's count)."""
    truncated: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


async def fetch_model_clients(backends: Backends, model: str) -> ModelClients:
    snapshot = await fetch_clients(backends)
    rows = [r for r in snapshot.rows if r.model == model]
    return ModelClients(
        model,
        rows[:MODEL_CLIENTS_SHOWN],
        len(rows),
        snapshot.active,
        list(snapshot.truncated),
        list(snapshot.warnings),
    )
