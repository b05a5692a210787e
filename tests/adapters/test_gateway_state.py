"""The gateway-state adapter: a gateway that is down, or answers something that is not its
per-client state, is one clear error (the real gateway's answers are read in
tests/gateway/test_gateway_app.py and tests/rules/test_sybil_alerts.py)."""

from __future__ import annotations

import httpx
import pytest
from support import free_port

from console.adapters.gateway_state import GatewayStateClient
from console.errors import BackendResponseError, BackendUnavailable


async def test_a_gateway_that_is_down_is_unavailable() -> None:
    client = GatewayStateClient(f"http://127.0.0.1:{free_port()}", 1.0)
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        await client.unlabelled()
    await client.aclose()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"label_slots": {"capacity": 2}, "tracked": 1, "unlabelled": []}, "label_slots.used"),
        (
            {
                "label_slots": {"capacity": 2, "used": 2},
                "tracked": 1,
                "unlabelled": [{"client": "x" * 500}],
            },
            "unlabelled.0",
        ),
        ([1, 2, 3], "(body)"),
    ],
)
async def test_garbage_is_one_line_naming_where(body: object, words: str) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    client = GatewayStateClient("http://gateway.test", 1.0, transport=transport)
    with pytest.raises(BackendResponseError) as err:
        await client.unlabelled()
    assert words in str(err.value) and "\n" not in str(err.value)
    await client.aclose()


async def test_limits_are_checked_before_sending() -> None:
    client = GatewayStateClient("http://gateway.test", 1.0)
    with pytest.raises(ValueError, match="between 1 and 1000"):
        await client.unlabelled(0)
    await client.aclose()
