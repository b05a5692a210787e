"""The append-only audit log: a JSON-lines hash chain with an authenticated checkpoint.

One append, under an exclusive ``flock`` on the log file itself (so two processes never fork
the chain):

1. read the head from the checkpoint and cross-check it against the log's last line;
2. write the new line(s) with ``O_APPEND`` and ``fsync`` (a partial write is cut back off);
3. write the checkpoint (temp file, ``fsync``, ``os.replace``, ``fsync`` of the directory);
4. send the record to the mirror, if there is one.

The mirror comes after the local commit on purpose: the local log is the authority, so the
mirror only ever holds records that are in the local chain and can never show a fork. If the
mirror fails, the record stays in the local log and ``append`` still raises AuditWriteError, so
the caller does not act; an intent written that way shows up as "outcome unknown" in verify.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from console.audit.records import (
    GENESIS_HASH,
    AuditEvent,
    AuditRecord,
    BadRecord,
    Checkpoint,
    LineFacts,
    RecordChecker,
    canonical_json,
    load_checkpoint,
    seal,
)
from console.errors import AuditError, AuditWriteError, ConfigError

if TYPE_CHECKING:
    from console.audit.mirror import AuditMirror
    from console.config import Settings

LOCK_TIMEOUT_S = 30.0
"""How long an append waits for another writer before it gives up."""
MAX_ROLL_FORWARD = 10_000
"""Records past the checkpoint an append accepts (a crash between line and checkpoint)."""

VERIFY_HINT = "run `aml-console audit verify`"


def default_checkpoint_path(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".head")


@dataclass(frozen=True)
class _Head:
    count: int
    hash: str
    size: int


class AuditLog:
    """Append-only, hash-chained, HMAC'd JSON-lines log of every action."""

    def __init__(
        self,
        path: Path,
        key: bytes | None,
        checkpoint_path: Path | None = None,
        mirror: AuditMirror | None = None,
    ) -> None:
        self.path = Path(path)
        self.key = key or None
        self.checkpoint_path = (
            Path(checkpoint_path) if checkpoint_path else default_checkpoint_path(self.path)
        )
        self.mirror = mirror
        self._key_problem: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditLog:
        """The configured log; an unreadable key file surfaces as AuditWriteError on write."""
        problem: str | None = None
        try:
            key = settings.audit_key()
        except ConfigError as exc:
            key, problem = None, str(exc)
        mirror: AuditMirror | None = None
        if settings.audit.mirror == "redis":
            from console.audit.mirror import RedisStreamMirror  # redis costs 0.5 s to import

            mirror = RedisStreamMirror(
                settings.redis.url, settings.audit.mirror_stream, settings.audit.mirror_deadline_s
            )
        log = cls(settings.audit_path, key, settings.audit_checkpoint_path, mirror)
        log._key_problem = problem
        return log

    # Writing ---------------------------------------------------------------------------------
    def append(self, event: AuditEvent) -> AuditRecord:
        """Write one record durably and return it. Raises AuditWriteError (nothing torn left)."""
        return self._append_batch([event])[0]

    def check_writable(self) -> None:
        """Raise AuditWriteError now if an append would fail for a reason known in advance."""
        key = self._require_key()
        cp_dir = self.checkpoint_path.parent
        if not os.access(self._existing_ancestor(cp_dir), os.W_OK):
            raise AuditWriteError(f"audit checkpoint directory is not writable: {cp_dir}")
        with self._locked() as fd:
            self._read_head(fd, key)
        check = getattr(self.mirror, "check", None)
        if callable(check):
            check()

    def _append_batch(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        # append() is a batch of one; the benchmark builds its 100k-record fixture through the
        # same path in larger batches (one fsync per batch).
        key = self._require_key()
        with self._locked() as fd:
            head = self._read_head(fd, key)
            records, data = _seal_all(events, head, key)
            self._write(fd, data, head.size)
            try:
                self._replace_checkpoint(Checkpoint.now(records[-1].seq, records[-1].hash), key)
            except AuditWriteError:
                self._cut_back(fd, head.size)
                raise
            # Past os.replace the checkpoint counts the new records: cutting them back now
            # would make the log look truncated, so a failure here keeps them and still raises.
            try:
                _fsync_dir(self.checkpoint_path.parent)
            except OSError as exc:
                raise AuditWriteError(
                    f"audit record seq {records[-1].seq} written, but the checkpoint's directory "
                    f"could not be synced: {_reason(exc)}"
                ) from None
            if self.mirror is not None:
                for record in records:
                    try:
                        self.mirror.send(record)
                    except AuditWriteError as exc:
                        raise AuditWriteError(
                            f"record seq {record.seq} is in the local audit log but was not "
                            f"mirrored: {exc}"
                        ) from None
        return records

    def _require_key(self) -> bytes:
        if self.key is None:
            reason = self._key_problem or (
                "no audit HMAC key configured (set CONSOLE_AUDIT__HMAC_KEY or audit.hmac_key_file)"
            )
            raise AuditWriteError(f"{reason}: refusing to write unauthenticated audit records")
        return self.key

    @contextmanager
    def _locked(self) -> Iterator[int]:
        fd = self._open_for_append()
        try:
            _flock(fd, self.path)
            yield fd
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _open_for_append(self) -> int:
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o600)
                created = True
            except FileExistsError:
                fd = os.open(self.path, flags)
                created = False
        except OSError as exc:
            raise AuditWriteError(f"cannot open audit log {self.path}: {_reason(exc)}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                # /dev/null would swallow the audit trail and report success.
                raise AuditWriteError(f"audit log {self.path} is not a regular file")
            if created:
                _fsync_dir(self.path.parent)
        except OSError as exc:
            os.close(fd)
            raise AuditWriteError(f"cannot create audit log {self.path}: {_reason(exc)}") from None
        except AuditWriteError:
            os.close(fd)
            raise
        return fd

    def _read_head(self, fd: int, key: bytes) -> _Head:
        size = os.fstat(fd).st_size
        try:
            cp = load_checkpoint(self.checkpoint_path, key)
        except BadRecord as exc:
            raise AuditWriteError(f"{exc}; refusing to append: {VERIFY_HINT}") from None
        except OSError as exc:
            raise AuditWriteError(
                f"cannot read audit checkpoint {self.checkpoint_path}: {_reason(exc)}"
            ) from None
        if size == 0:
            if cp is None or cp.count == 0:
                return _Head(0, GENESIS_HASH, 0)
            raise AuditWriteError(
                f"audit log {self.path} is empty but its checkpoint holds {cp.count} records: "
                f"refusing to append: {VERIFY_HINT}"
            )
        if os.pread(fd, 1, size - 1) != b"\n":
            raise AuditWriteError(
                f"audit log {self.path} ends with a partial record: "
                f"refusing to append: {VERIFY_HINT}"
            )
        if cp is None:
            raise AuditWriteError(
                f"audit log {self.path} has records but no checkpoint "
                f"({self.checkpoint_path}): refusing to append: {VERIFY_HINT}"
            )
        last = self._checked(tail_lines(fd, size, 1), key)[-1]
        if last.seq == cp.count and last.hash == cp.head:
            return _Head(cp.count, cp.head, size)
        if cp.count < last.seq <= cp.count + MAX_ROLL_FORWARD:
            # A crash between the line's fsync and the checkpoint: accept the authenticated
            # records past the checkpoint if they chain from its head.
            extra = last.seq - cp.count + (1 if cp.count else 0)
            chain = self._checked(tail_lines(fd, size, extra), key)
            if _chains_from(chain, cp):
                return _Head(last.seq, last.hash, size)
        raise AuditWriteError(
            f"audit checkpoint ({cp.count} records) disagrees with the last record of "
            f"{self.path} (seq {last.seq}): refusing to append: {VERIFY_HINT}"
        )

    def _checked(self, lines: list[bytes], key: bytes) -> list[LineFacts]:
        checker = RecordChecker(key)
        try:
            return [checker.check(line) for line in lines]
        except BadRecord as exc:
            raise AuditWriteError(
                f"last records of {self.path} do not check out ({exc}): refusing to append: "
                f"{VERIFY_HINT}"
            ) from None

    def _write(self, fd: int, data: bytes, size_before: int) -> None:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                if written <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
            os.fsync(fd)
        except OSError as exc:
            self._cut_back(fd, size_before)
            raise AuditWriteError(f"cannot write audit log {self.path}: {_reason(exc)}") from None

    def _cut_back(self, fd: int, size: int) -> None:
        """Truncate a failed append away so the log never ends with a torn or orphan line."""
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as exc:
            raise AuditWriteError(
                f"cannot write audit log {self.path}, and cannot cut the partial record back off "
                f"({_reason(exc)}): {VERIFY_HINT}"
            ) from None

    def _replace_checkpoint(self, cp: Checkpoint, key: bytes) -> None:
        """Temp file, fsync, atomic rename: the checkpoint is always a whole old or new one."""
        target = self.checkpoint_path
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                data = memoryview(cp.to_bytes(key))
                while data:
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise AuditWriteError(
                f"cannot write audit checkpoint {target}: {_reason(exc)}"
            ) from None

    @staticmethod
    def _existing_ancestor(path: Path) -> Path:
        while not path.exists() and path != path.parent:
            path = path.parent
        return path

    # Reading (no key needed: these show records, `verify` judges them) ---------------------
    def tail(self, n: int = 20) -> list[AuditRecord]:
        """The last ``n`` complete records, oldest first."""
        if n <= 0:
            return []
        fd = self._open_for_read()
        if fd is None:
            return []
        try:
            size = os.fstat(fd).st_size
            # Line numbers are unknown when reading from the end.
            return [self._parse(line, None) for line in tail_lines(fd, size, n)]
        finally:
            os.close(fd)

    def records(self, run_id: str | None = None) -> list[AuditRecord]:
        """Every complete record, or those of one run, in log order."""
        fd = self._open_for_read()
        if fd is None:
            return []
        # A cheap byte filter first; the parsed field decides.
        needle = b'"run_id":' + canonical_json(run_id) if run_id is not None else b""
        out: list[AuditRecord] = []
        with os.fdopen(fd, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                if not raw.endswith(b"\n"):
                    break  # a torn last line is not a record
                if needle not in raw:
                    continue
                record = self._parse(raw[:-1], number)
                if run_id is None or record.run_id == run_id:
                    out.append(record)
        return out

    def _open_for_read(self) -> int | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise AuditError(f"cannot read audit log {self.path}: {_reason(exc)}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise AuditError(f"audit log {self.path} is not a regular file")
        return fd

    def _parse(self, line: bytes, number: int | None) -> AuditRecord:
        try:
            return AuditRecord.model_validate_json(line)
        except ValueError:
            where = f"line {number}" if number else "a record near the end"
            raise AuditError(
                f"{self.path}: {where} is not a readable audit record: {VERIFY_HINT}"
            ) from None


def tail_lines(fd: int, size: int, n: int, chunk: int = 65536) -> list[bytes]:
    """The last ``n`` newline-terminated lines before ``size``, without their newlines.

    Bytes after the last newline (a torn line) are ignored.
    """
    end = size
    buf = b""
    while end > 0:
        start = max(0, end - chunk)
        buf = os.pread(fd, end - start, start) + buf
        end = start
        if buf.count(b"\n") > n:
            break
    cut = buf.rfind(b"\n") + 1
    lines = buf[:cut].split(b"\n")[:-1]
    if end > 0:  # the first piece may be the tail of an earlier line
        lines = lines[1:]
    return lines[-n:]


def _seal_all(
    events: Sequence[AuditEvent], head: _Head, key: bytes
) -> tuple[list[AuditRecord], bytes]:
    records: list[AuditRecord] = []
    lines: list[bytes] = []
    prev, seq = head.hash, head.count
    for event in events:
        seq += 1
        try:
            draft = AuditRecord(
                **dict(event), seq=seq, time=datetime.now(UTC), prev_hash=prev, hash="", hmac=""
            )
            body = draft.model_dump(mode="json", exclude={"hash", "hmac"})
            full, line = seal(body, key)
        except (ValueError, TypeError) as exc:
            # Unserialisable arguments/state (bytes that are not UTF-8, objects, lone
            # surrogates): refuse rather than write something the verifier cannot reproduce.
            raise AuditWriteError(
                f"audit record for run {event.run_id} cannot be serialised: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
        records.append(draft.model_copy(update={"hash": full["hash"], "hmac": full["hmac"]}))
        lines.append(line)
        prev = full["hash"]
    if not records:
        raise AuditWriteError("nothing to append")
    return records, b"".join(lines)


def _chains_from(chain: list[LineFacts], cp: Checkpoint) -> bool:
    prev, seq = cp.head, cp.count
    if cp.count:
        first, chain = chain[0], chain[1:]
        if first.seq != cp.count or first.hash != cp.head:
            return False
    for facts in chain:
        seq += 1
        if facts.seq != seq or facts.prev_hash != prev:
            return False
        prev = facts.hash
    return True


def _flock(fd: int, path: Path) -> None:
    # Poll instead of blocking forever: a stuck writer must not hang every runbook silently.
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    pause = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise AuditWriteError(
                    f"audit log {path} is locked by another writer for over {LOCK_TIMEOUT_S:g} s"
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        except OSError as exc:
            raise AuditWriteError(f"cannot lock audit log {path}: {_reason(exc)}") from None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


__all__ = ["AuditLog", "default_checkpoint_path", "tail_lines"]
