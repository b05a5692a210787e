"""Alertmanager v2 API: alerts, silences, and the status (version, receivers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, Field, ValidationError

from console.adapters.http import make_client, request_json
from console.endpoints import HttpClientOptions
from console.errors import BackendResponseError

API = "/api/v2"


class Matcher(BaseModel):
    name: str
    value: str
    isRegex: bool = False  # noqa: N815 - Alertmanager's field name
    isEqual: bool = True  # noqa: N815


class Silence(BaseModel):
    id: str
    matchers: list[Matcher]
    startsAt: datetime  # noqa: N815
    endsAt: datetime  # noqa: N815
    createdBy: str = ""  # noqa: N815
    comment: str = ""
    state: str = ""

    def matches(self, matchers: list[Matcher]) -> bool:
        def key(m: Matcher) -> tuple[str, str, bool, bool]:
            return (m.name, m.value, m.isRegex, m.isEqual)

        return sorted(map(key, self.matchers)) == sorted(map(key, matchers))


class Alert(BaseModel):
    fingerprint: str
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None  # noqa: N815
    endsAt: datetime | None = None  # noqa: N815
    state: str = ""
    silencedBy: list[str] = Field(default_factory=list)  # noqa: N815


class AlertmanagerStatus(BaseModel):
    version: str
    """Empty when the server does not say."""
    receivers: list[str]


class AlertmanagerClient:
    backend = "alertmanager"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @classmethod
    def connect(
        cls, url: str, timeout_s: float, *, options: HttpClientOptions | None = None
    ) -> AlertmanagerClient:
        """With ``options``' credentials, TLS and proxy (``[alertmanager]``)."""
        return cls(make_client(url, timeout_s, options=options, backend=cls.backend))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return await request_json(self._client, self.backend, method, API + path, **kwargs)

    async def alerts(self, filters: list[str] | None = None) -> list[Alert]:
        params = {"filter": filters} if filters else None
        body = await self._call("GET", "/alerts", params=params)
        if not isinstance(body, list):
            raise BackendResponseError("alertmanager: /alerts did not answer a list", self.backend)
        out = []
        for raw in body:
            if not isinstance(raw, dict):
                continue
            status = raw.get("status") or {}
            out.append(
                _parse(
                    Alert,
                    {
                        "fingerprint": str(raw.get("fingerprint", "")),
                        "labels": raw.get("labels") or {},
                        "annotations": raw.get("annotations") or {},
                        "startsAt": raw.get("startsAt"),
                        "endsAt": raw.get("endsAt"),
                        "state": str(status.get("state", "")),
                        "silencedBy": status.get("silencedBy") or [],
                    },
                )
            )
        return out

    async def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        await self._call("POST", "/alerts", json_body=alerts)

    async def silences(self) -> list[Silence]:
        body = await self._call("GET", "/silences")
        if not isinstance(body, list):
            raise BackendResponseError(
                "alertmanager: /silences did not answer a list", self.backend
            )
        out = []
        for raw in body:
            if isinstance(raw, dict):
                out.append(
                    _parse(Silence, {**raw, "state": (raw.get("status") or {}).get("state", "")})
                )
        return out

    async def get_silence(self, silence_id: str) -> Silence | None:
        body = await self._call("GET", f"/silence/{silence_id}", allow_404=True)
        if body is None:
            return None
        if not isinstance(body, dict):
            raise BackendResponseError("alertmanager: a silence is not an object", self.backend)
        return _parse(Silence, {**body, "state": (body.get("status") or {}).get("state", "")})

    async def active_silences(self, matchers: list[Matcher]) -> list[Silence]:
        return [s for s in await self.silences() if s.state == "active" and s.matches(matchers)]

    async def create_silence(
        self,
        matchers: list[Matcher],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> str:
        body = await self._call(
            "POST",
            "/silences",
            json_body={
                "matchers": [m.model_dump() for m in matchers],
                "startsAt": starts_at.isoformat(),
                "endsAt": ends_at.isoformat(),
                "createdBy": created_by,
                "comment": comment,
            },
        )
        if not isinstance(body, dict) or not body.get("silenceID"):
            raise BackendResponseError("alertmanager: no silenceID in the answer", self.backend)
        return str(body["silenceID"])

    async def expire_silence(self, silence_id: str) -> None:
        await self._call("DELETE", f"/silence/{silence_id}")

    async def status(self) -> AlertmanagerStatus:
        """``/api/v2/status``: the version, and the receivers of the loaded configuration."""
        import yaml

        body = await self._call("GET", "/status")
        if not isinstance(body, dict):
            raise BackendResponseError("alertmanager: /status is not an object", self.backend)
        version = body.get("versionInfo") or {}
        original = (body.get("config") or {}).get("original")
        if not isinstance(original, str):
            raise BackendResponseError("alertmanager: /status has no configuration", self.backend)
        try:
            config = yaml.safe_load(original) or {}
        except yaml.YAMLError:
            raise BackendResponseError(
                "alertmanager: /status holds a configuration that is not YAML", self.backend
            ) from None
        receivers = config.get("receivers") if isinstance(config, dict) else None
        return AlertmanagerStatus(
            version=str(version.get("version", "")) if isinstance(version, dict) else "",
            receivers=[str(r.get("name", "")) for r in receivers or [] if isinstance(r, dict)],
        )


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BackendResponseError(
            f"alertmanager: unexpected {model.__name__} ({where}: {first['msg']})", "alertmanager"
        ) from None
