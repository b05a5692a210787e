"""Fixtures of the replay tests (defined in replay_stack.py, which test modules import for
its constants and helpers: a module named conftest would clash with the other test folders')."""

from replay_stack import env, mlserver, replay_model, sessions, store, v2_gateway  # noqa: F401

__all__ = ["env", "mlserver", "replay_model", "sessions", "store", "v2_gateway"]
