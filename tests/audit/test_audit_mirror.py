"""The Redis stream mirror against a real redis-server."""

from __future__ import annotations

import redis
from audit_helpers import KEY, event, lines

from console.audit import AuditLog, verify_log
from console.audit.mirror import RedisStreamMirror
from console.config import Settings


def test_records_reach_the_stream_as_stored(log_path, redis_url):
    stream = f"aml:audit:test:{log_path.parent.parent.name}"
    log = AuditLog(log_path, KEY, mirror=RedisStreamMirror(redis_url, stream, 2.0))
    log.check_writable()
    for i in range(3):
        log.append(event(step=f"s{i}"))
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange(stream)
    assert [fields[b"seq"] for _, fields in entries] == [b"1", b"2", b"3"]
    assert [fields[b"record"] + b"\n" for _, fields in entries] == lines(log_path)
    assert verify_log(log_path, KEY, log.checkpoint_path).ok


def test_from_settings_builds_the_mirror(tmp_path, redis_url):
    settings = Settings(
        run_dir=tmp_path,
        redis={"url": redis_url},  # type: ignore[arg-type]
        audit={"hmac_key": "k", "mirror": "redis", "mirror_stream": "aml:audit:fs"},  # type: ignore[arg-type]
    )
    log = AuditLog.from_settings(settings)
    assert isinstance(log.mirror, RedisStreamMirror)
    assert log.path == tmp_path / "audit" / "audit.jsonl"
    log.append(event())
    assert redis.Redis.from_url(redis_url).xlen("aml:audit:fs") == 1
