"""Fixtures of the gateway-snippet tests: MLServer serving the digits model and onnxruntime
sessions of the same artifacts, from the replay tests (tests/replay/replay_stack.py)."""

import sys

from support import REPO

sys.path.insert(0, str(REPO / "tests" / "replay"))
from replay_stack import mlserver, replay_model, sessions  # noqa: E402, F401

__all__ = ["mlserver", "replay_model", "sessions"]
