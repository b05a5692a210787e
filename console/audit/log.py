"""The append-only audit log: a JSON-lines hash chain with an authenticated checkpoint and
a witness.

One append, under an exclusive ``flock`` on the log file itself (so two processes never fork
the chain):

1. read the head from the checkpoint, cross-check it against the log's last line, and check
   that the log holds the head its witness names (``console.audit.head``);
2. write the new line(s) with ``O_APPEND`` and ``fsync`` (a partial write is cut back off);
3. write the checkpoint (temp file, ``fsync``, ``os.replace``, ``fsync`` of the directory);
4. write the witness the same way (``console.audit.witness``), if there is one;
5. send the record to the mirror, if there is one.

The witness and the mirror come after the local commit on purpose: the local log is the
authority, so they only ever hold records that are in the local chain (the witness may trail
it after a crash, never lead it). If either fails, the record stays in the local log and
``append`` still raises AuditWriteError, so the caller does not act; an intent written that way
shows up as "outcome unknown" in verify.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from console.audit.files import (
    NotRegularFile,
    flock_polling,
    fsync_dir,
    kind_of,
    make_private_dirs,
    open_regular,
    reason,
    replace_file,
    write_all,
)
from console.audit.head import VERIFY_HINT, Head, check_witness, read_head, tail_lines
from console.audit.records import (
    AuditEvent,
    AuditRecord,
    Checkpoint,
    canonical_json,
    record_body,
    seal,
)
from console.audit.witness import Witness, store_witness, witness_path_for
from console.errors import AuditError, AuditWriteError, ConfigError

if TYPE_CHECKING:
    from console.audit.mirror import AuditMirror
    from console.config import Settings

LOCK_TIMEOUT_S = 30.0
"""How long an append waits for another writer before it gives up."""


def default_checkpoint_path(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".head")


class AuditLog:
    """Append-only, hash-chained, HMAC'd JSON-lines log of every action."""

    def __init__(
        self,
        path: Path,
        key: bytes | None,
        checkpoint_path: Path | None = None,
        mirror: AuditMirror | None = None,
        witness_path: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.key = key or None
        self.checkpoint_path = (
            Path(checkpoint_path) if checkpoint_path else default_checkpoint_path(self.path)
        )
        self.mirror = mirror
        self.witness_path = Path(witness_path) if witness_path else None
        """None: no witness (``from_settings`` gives one unless ``audit.witness = "none"``)."""
        self._problem: str | None = None
        """Why this log cannot be written (an unreadable key file, no place for the witness)."""
        self.context: str | None = None
        """The context written into each record that does not name one."""

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
                settings.redis, settings.audit.mirror_stream, settings.audit.mirror_deadline_s
            )
        witness: Path | None = None
        try:
            witness = witness_path_for(settings)
        except ConfigError as exc:
            problem = problem or str(exc)  # reading still works; writing refuses
        log = cls(settings.audit_path, key, settings.audit_checkpoint_path, mirror, witness)
        log._problem = problem
        log.context = settings.context
        return log

    # Writing ---------------------------------------------------------------------------------
    def append(self, event: AuditEvent) -> AuditRecord:
        """Write one record durably and return it. Raises AuditWriteError (nothing torn left)."""
        return self._append_batch([event])[0]

    def append_over_witness(self, event: AuditEvent) -> AuditRecord:
        """Append without comparing the log with its witness, then move the witness to the
        new head, backwards if need be: ``audit reset-witness``, and nothing else."""
        return self._append_batch([event], reset_witness=True)[0]

    def check_writable(self) -> None:
        """Raise AuditWriteError now if an append would fail for a reason known in advance."""
        key = self.require_key()
        directories = [("checkpoint", self.checkpoint_path.parent)]
        if self.witness_path is not None:
            directories.append(("witness", self.witness_path.parent))
        for what, directory in directories:
            if not os.access(_existing_ancestor(directory), os.W_OK):
                raise AuditWriteError(f"audit {what} directory is not writable: {directory}")
        with self._locked() as fd:
            head = read_head(fd, self.path, self.checkpoint_path, key)
            if self.witness_path is not None:
                check_witness(fd, head, self.path, self.witness_path, key)
        check = getattr(self.mirror, "check", None)
        if callable(check):
            check()

    def _append_batch(
        self, events: Sequence[AuditEvent], *, reset_witness: bool = False
    ) -> list[AuditRecord]:
        # append() is a batch of one; the benchmark builds its 100k-record fixture through the
        # same path in larger batches (one fsync per batch).
        key = self.require_key()
        with self._locked() as fd:
            head = read_head(fd, self.path, self.checkpoint_path, key)
            if self.witness_path is not None and not reset_witness:
                check_witness(fd, head, self.path, self.witness_path, key)
            records, data = _seal_all(events, head, key, self.context)
            self._write(fd, data, head.size)
            try:
                self._replace_checkpoint(Checkpoint.now(records[-1].seq, records[-1].hash), key)
            except AuditWriteError:
                self._cut_back(fd, head.size)
                raise
            # Past os.replace the checkpoint counts the new records: cutting them back now
            # would make the log look truncated, so a failure here keeps them and still raises.
            try:
                fsync_dir(self.checkpoint_path.parent)
            except OSError as exc:
                raise AuditWriteError(
                    f"audit record seq {records[-1].seq} written, but the checkpoint's directory "
                    f"could not be synced: {reason(exc)}"
                ) from None
            self._replace_witness(records[-1], key)
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

    def _replace_witness(self, last: AuditRecord, key: bytes) -> None:
        # Only ever forward: check_witness, under this same lock, saw a witness at or behind
        # the head these records extend (or reset_witness asked for the move).
        if self.witness_path is None:
            return
        try:
            store_witness(self.witness_path, Witness.now(last.seq, last.hash, self.path), key)
        except OSError as exc:
            raise AuditWriteError(
                f"audit record seq {last.seq} written, but its witness {self.witness_path} "
                f"could not be updated: {reason(exc)}"
            ) from None

    def require_key(self) -> bytes:
        """The HMAC key; AuditWriteError saying why there is none, or why the log cannot be
        written as configured."""
        if self.key is None:
            why = self._problem or (
                "no audit HMAC key configured (set CONSOLE_AUDIT__HMAC_KEY or audit.hmac_key_file)"
            )
            raise AuditWriteError(f"{why}: refusing to write unauthenticated audit records")
        if self._problem is not None:
            raise AuditWriteError(f"{self._problem}: refusing to write audit records")
        return self.key

    @contextmanager
    def _locked(self) -> Iterator[int]:
        fd = self._open_for_append()
        try:
            flock_polling(fd, self.path, LOCK_TIMEOUT_S)
            yield fd
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _open_for_append(self) -> int:
        # O_RDWR never blocks, even on a FIFO; the fstat below refuses anything not regular.
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
        try:
            make_private_dirs(self.path.parent)
            try:
                fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o600)
                created = True
            except FileExistsError:
                fd = os.open(self.path, flags)
                created = False
        except OSError as exc:
            raise AuditWriteError(f"cannot open audit log {self.path}: {reason(exc)}") from None
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                # /dev/null would swallow the audit trail and report success.
                raise AuditWriteError(
                    f"audit log {self.path} is not a regular file ({kind_of(mode)})"
                )
            if created:
                fsync_dir(self.path.parent)
        except OSError as exc:
            os.close(fd)
            raise AuditWriteError(f"cannot create audit log {self.path}: {reason(exc)}") from None
        except AuditWriteError:
            os.close(fd)
            raise
        return fd

    def _write(self, fd: int, data: bytes, size_before: int) -> None:
        try:
            write_all(fd, data)
            os.fsync(fd)
        except OSError as exc:
            self._cut_back(fd, size_before)
            raise AuditWriteError(f"cannot write audit log {self.path}: {reason(exc)}") from None

    def _cut_back(self, fd: int, size: int) -> None:
        """Truncate a failed append away so the log never ends with a torn or orphan line."""
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as exc:
            raise AuditWriteError(
                f"cannot write audit log {self.path}, and cannot cut the partial record back off "
                f"({reason(exc)}): {VERIFY_HINT}"
            ) from None

    def _replace_checkpoint(self, cp: Checkpoint, key: bytes) -> None:
        """Temp file, fsync, atomic rename: the checkpoint is always a whole old or new one."""
        try:
            replace_file(self.checkpoint_path, cp.to_bytes(key), sync_dir=False)
        except OSError as exc:
            raise AuditWriteError(
                f"cannot write audit checkpoint {self.checkpoint_path}: {reason(exc)}"
            ) from None

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
        # Never blocks: opening a FIFO for reading would wait for a writer.
        try:
            return open_regular(self.path)
        except FileNotFoundError:
            return None
        except NotRegularFile as exc:
            raise AuditError(f"audit log {exc}") from None
        except OSError as exc:
            raise AuditError(f"cannot read audit log {self.path}: {reason(exc)}") from None

    def _parse(self, line: bytes, number: int | None) -> AuditRecord:
        try:
            return AuditRecord.model_validate_json(line)
        except ValueError:
            where = f"line {number}" if number else "a record near the end"
            raise AuditError(
                f"{self.path}: {where} is not a readable audit record: {VERIFY_HINT}"
            ) from None


def _seal_all(
    events: Sequence[AuditEvent], head: Head, key: bytes, context: str | None = None
) -> tuple[list[AuditRecord], bytes]:
    records: list[AuditRecord] = []
    lines: list[bytes] = []
    prev, seq = head.hash, head.count
    for event in events:
        seq += 1
        try:
            fields = dict(event)
            fields["context"] = event.context or context
            draft = AuditRecord(
                **fields, seq=seq, time=datetime.now(UTC), prev_hash=prev, hash="", hmac=""
            )
            body = record_body(draft, exclude={"hash", "hmac"})
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


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


__all__ = ["AuditLog", "default_checkpoint_path", "tail_lines"]
