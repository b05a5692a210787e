"""Copies of committed records in a shared sink, for teams (a Redis stream)."""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from console.adapters.redis_client import endpoint_of, redis_failure, sync_client
from console.audit.records import AuditRecord, record_line
from console.config import RedisSection
from console.errors import AuditWriteError, ConfigError


def _no_setinfo() -> dict[str, Any]:
    # No CLIENT SETINFO round trips on connect: each would get its own timeout. redis-py 7+
    # spells it driver_info=None (lib_name is deprecated); older versions lib_name=None.
    params = inspect.signature(redis.connection.AbstractConnection.__init__).parameters
    if "driver_info" in params:
        return {"driver_info": None}
    return {"lib_name": None, "lib_version": None}


_NO_SETINFO = _no_setinfo()


class AuditMirror(Protocol):
    """A sink that receives every committed record, in order."""

    def send(self, record: AuditRecord) -> None:
        """Deliver one record; raise AuditWriteError if it is not accepted within the deadline."""
        ...


class RedisStreamMirror:
    """XADD each record's stored line to a Redis stream.

    The deadline is the socket timeout of both connect and read, with retries off: redis-py
    retries timeouts by default, which would multiply the deadline. A fresh connection can
    therefore take up to about twice the deadline (connect, then the XADD reply).

    ``redis_config`` is the ``[redis]`` section (its credentials and TLS apply), or just a URL.
    """

    def __init__(self, redis_config: RedisSection | str, stream: str, deadline_s: float) -> None:
        self.redis_config = (
            redis_config
            if isinstance(redis_config, RedisSection)
            else RedisSection(url=redis_config)
        )
        self.url = self.redis_config.url
        self.stream = stream
        self.deadline_s = deadline_s
        self._client: redis.Redis | None = None

    def _redis(self) -> redis.Redis:
        if self._client is None:
            try:
                self._client = sync_client(
                    self.redis_config,
                    timeout_s=self.deadline_s,
                    retry=Retry(NoBackoff(), 0),
                    retry_on_timeout=False,
                    **_NO_SETINFO,
                )
            except ConfigError as exc:  # an unreadable password file
                raise AuditWriteError(f"audit mirror {self._where()}: {exc}") from None
        return self._client

    def send(self, record: AuditRecord) -> None:
        fields = {
            "seq": str(record.seq),
            "hash": record.hash,
            "record": record_line(record).rstrip(b"\n"),
        }
        try:
            self._redis().xadd(self.stream, fields)  # type: ignore[arg-type]
        except redis.RedisError as exc:
            reason = self._reason(exc, "XADD")
            self._drop()
            raise AuditWriteError(
                f"audit mirror {self._where()} did not accept record seq {record.seq} "
                f"within {self.deadline_s:g} s: {reason}"
            ) from None

    def check(self) -> None:
        """PING within the deadline; AuditWriteError if the mirror is not there."""
        try:
            self._redis().ping()
        except redis.RedisError as exc:
            reason = self._reason(exc, "PING")
            self._drop()
            raise AuditWriteError(
                f"audit mirror {self._where()} is not reachable within {self.deadline_s:g} s: "
                f"{reason}"
            ) from None

    def close(self) -> None:
        self._drop()

    def _drop(self) -> None:
        # A timed-out connection may still get the late reply: never reuse it.
        if self._client is not None:
            self._client.close()
            self._client = None

    def _where(self) -> str:
        # Never show a password from the URL.
        host_part = self.url.rsplit("@", 1)[-1]
        return f"redis stream {self.stream!r} at {host_part}"

    def _reason(self, exc: redis.RedisError, what: str) -> str:
        """Why, in the words every Redis failure has (refused credentials, a TLS problem)."""
        return str(redis_failure(exc, what, endpoint_of(self._client)))


__all__ = ["AuditMirror", "RedisStreamMirror"]
