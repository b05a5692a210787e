"""The guarded gateway's own per-client state (``GET /aml/clients``): who is counted as
``other`` because every client label slot is held, riskiest first. Prometheus cannot name
those clients (that is the point of the bucket); the gateway, which scores every client, can.
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel, Field, ValidationError

from console.adapters.http import make_client, request_json
from console.endpoints import HttpClientOptions
from console.errors import BackendResponseError

MAX_LISTED = 1000


class LabelSlots(BaseModel):
    capacity: int
    used: int


class UnlabelledClient(BaseModel):
    """A client without a label of its own, as the gateway scores it. The id is
    attacker-chosen text: show it through ``console/tui/text.py``."""

    client: str = Field(max_length=128)
    risk: float
    extraction: dict[str, float] = Field(default_factory=dict)
    """Model -> its extraction score there."""
    flag_rate: float
    refused_share: float
    answered_rate: float
    idle_s: float


class GatewayClients(BaseModel):
    label_slots: LabelSlots
    tracked: int
    unlabelled: list[UnlabelledClient] = Field(max_length=MAX_LISTED)


class GatewayStateClient:
    backend = "gateway"

    def __init__(
        self,
        url: str,
        timeout_s: float,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        options: HttpClientOptions | None = None,
    ) -> None:
        """``options``: credentials, TLS and proxy (``[client_state]``); ``transport``
        replaces the network (a test's answers a real gateway cannot give)."""
        self._client = make_client(
            url, timeout_s, options=options, backend=self.backend, transport=transport
        )

    async def unlabelled(self, limit: int = 50) -> GatewayClients:
        if not 1 <= limit <= MAX_LISTED:
            raise ValueError(f"limit must be between 1 and {MAX_LISTED}")
        body = await request_json(
            self._client, self.backend, "GET", "/aml/clients", params={"limit": limit}
        )
        try:
            return GatewayClients.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(body)"
            raise BackendResponseError(
                f"gateway GET /aml/clients: unexpected answer at {where}: {first['msg']}",
                self.backend,
            ) from None

    async def aclose(self) -> None:
        await self._client.aclose()
