"""Helpers shared by the audit tests (a uniquely named module: no clash with other conftests)."""

from __future__ import annotations

from pathlib import Path

from console.audit import AuditEvent, AuditLog

KEY = b"test-audit-key-0123456789"


def event(kind: str = "step-intent", run_id: str = "run-1", step: str | None = "s1", **kw: object):
    fields: dict[str, object] = {
        "kind": kind,
        "operator": "alice",
        "environment": "lab",
        "run_id": run_id,
        "runbook": "block-client",
        "step": step,
        "action": "policy.block",
        "target": "client-42",
        "arguments": {"client_id": "client-42", "ttl_s": 600},
        "before": {"blocked": False},
        "after": None,
        "result": "planned" if kind.endswith("intent") else "ok",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
    }
    fields.update(kw)
    return AuditEvent.model_validate(fields)


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, items: list[bytes]) -> None:
    path.write_bytes(b"".join(items))


def append_many(path: str, checkpoint: str, worker: int, count: int) -> None:
    """Process body for the concurrency test (module level so `spawn` can import it)."""
    log = AuditLog(Path(path), KEY, Path(checkpoint))
    for i in range(count):
        log.append(event(run_id=f"worker-{worker}", step=f"s{i}"))


def append_under_fsize_limit(path: str, checkpoint: str, room: int) -> str:
    """Append with RLIMIT_FSIZE leaving ``room`` bytes: a real partial write, then EFBIG."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    size = Path(path).stat().st_size
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + room, resource.RLIM_INFINITY))
    log = AuditLog(Path(path), KEY, Path(checkpoint))
    try:
        log.append(event(step="big", arguments={"payload": "x" * 2000}))
    except Exception as exc:  # noqa: BLE001 - reported back to the parent as text
        return f"{type(exc).__name__}: {exc}"
    return "no error"
