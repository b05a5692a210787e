"""What an exception raised by a step's apply or undo means for the run."""

from __future__ import annotations

from console.errors import BackendResponseError, BackendUnavailable, ConsoleError, RunbookError


def may_have_landed(exc: BaseException) -> bool:
    """A timeout, a dropped connection, a 5xx or an unexpected error may come after the
    change was made; a 4xx or a validation error means the backend refused it."""
    if isinstance(exc, BackendUnavailable):
        return True
    if isinstance(exc, BackendResponseError):
        return exc.status is None or exc.status >= 500
    return not isinstance(exc, ConsoleError)


def as_console_error(exc: BaseException) -> ConsoleError:
    """``exc`` as the one-line error a person is shown (an unexpected one by its type)."""
    if isinstance(exc, ConsoleError):
        return exc
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return RunbookError(f"unexpected {type(exc).__name__}{': ' + text if text else ''}")
