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


def append_witnessed(path: str, checkpoint: str, witness: str, worker: int, count: int) -> None:
    """append_many, with a witness (module level so `spawn` can import it)."""
    log = AuditLog(Path(path), KEY, Path(checkpoint), witness_path=Path(witness))
    for i in range(count):
        log.append(event(run_id=f"worker-{worker}", step=f"s{i}"))


def append_then_kill9(path: str, checkpoint: str, witness: str, point: str) -> None:
    """Append one record and SIGKILL this process at ``point`` of the append:

    - ``before-checkpoint``: the line is written and fsynced, the checkpoint is not replaced;
    - ``before-witness``: the checkpoint is replaced, the witness is not touched;
    - ``mid-witness``: the witness' temp file is written and fsynced, not yet renamed.
    """
    import os
    import signal

    import console.audit.files as files
    import console.audit.log as log_module

    def die(*_args: object, **_kw: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "before-checkpoint":
        log_module.AuditLog._replace_checkpoint = die  # type: ignore[method-assign]
    elif point == "before-witness":
        log_module.store_witness = die  # type: ignore[assignment]
    elif point == "mid-witness":
        real_replace = os.replace

        def replace(src: object, dst: object) -> None:
            if str(dst) == witness:
                die()
            real_replace(src, dst)  # type: ignore[arg-type]

        files.os.replace = replace  # type: ignore[assignment]
    else:
        raise ValueError(point)
    log = AuditLog(Path(path), KEY, Path(checkpoint), witness_path=Path(witness))
    log.append(event(step=f"killed-{point}"))
    raise AssertionError("not killed")


def append_forever(path: str, checkpoint: str, witness: str) -> None:
    """Append until killed (the random kill -9 test)."""
    log = AuditLog(Path(path), KEY, Path(checkpoint), witness_path=Path(witness))
    i = 0
    while True:
        i += 1
        log.append(event(step=f"s{i}"))
