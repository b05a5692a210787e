"""Which ONNX bytes are the lab's own seed models, decided without trusting the registry.

``lab up`` signs the seed artifacts an older lab logged unsigned (``seed_runs``). Anyone with
registry write access can add runs, artifacts, versions and ``onnx_sha256`` tags, so what gets
signed is decided here from what only this lab knows:

- the sha256 of seed artifacts it verified or logged itself in this process;
- the manifest ``seed-artifacts.sha256`` beside the lab's private key (``<run_dir>/secrets/``,
  0600): one ``<sha256> <kind>`` line per seed artifact ``log_onnx_run`` uploaded, and the
  verdicts of the comparison below (``<sha256> not-ours`` for bytes that are not the lab's);
- the seed models trained again here (``seed_train``; an MLflow seeded before the manifest).
  Training is deterministic except the ONNX graph's name, a random 32-hex uuid skl2onnx picks
  at export, so bytes count as the seed's when they equal a freshly trained model's byte for
  byte outside that name and the name is 32 hex digits (the same length, so every other byte
  is at the same place: nothing else can differ).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from console.errors import LabError
from console.lab.seed_train import TrainedModel, train_seed_models
from console.private_files import append_private_text, private_dir

MANIFEST_NAME = "seed-artifacts.sha256"
NOT_OURS = "not-ours"
"""The manifest's word for bytes compared with the trained seed models and not theirs."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
_GRAPH_NAME = re.compile(rb"[0-9a-f]{32}")
log = logging.getLogger(__name__)


def manifest_path(private_key: Path) -> Path:
    """The manifest beside the lab's private key (``<run_dir>/secrets/`` by default)."""
    return private_key.parent / MANIFEST_NAME


def record(manifest: Path, sha256: str, kind: str) -> None:
    """Add a line to the manifest (made 0600 in a 0700 dir): ``kind`` for a seed artifact this
    lab uploads or recognised, ``NOT_OURS`` for bytes compared and found not to be the lab's."""
    private_dir(manifest.parent, tighten=False)
    with append_private_text(manifest) as fh:
        fh.write(f"{sha256} {kind}\n")


def recorded(manifest: Path | None) -> tuple[frozenset[str], frozenset[str]]:
    """The sha256s in the manifest: the lab's own, and those found not to be. None when it is
    missing, or (logged) when it is not this user's or others may write it: then it is not
    only this lab's word."""
    if manifest is None:
        return frozenset(), frozenset()
    try:
        info = manifest.lstat()
        text = manifest.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset(), frozenset()
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        log.warning("lab: %s ignored: not a private file of this user", manifest)
        return frozenset(), frozenset()
    ours: set[str] = set()
    not_ours: set[str] = set()
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and _SHA256.fullmatch(words[0]):
            (not_ours if words[1] == NOT_OURS else ours).add(words[0])
    return frozenset(ours), frozenset(not_ours - ours)


def same_model(candidate: bytes, trained: bytes, graph_name: str) -> bool:
    """``candidate`` is ``trained`` but perhaps for the graph's name (``graph_name``, the
    32-hex uuid at export), which may be any other 32 hex digits."""
    if candidate == trained:
        return True
    name = graph_name.encode()
    if len(candidate) != len(trained) or not _GRAPH_NAME.fullmatch(name):
        return False
    if trained.count(name) != 1:
        return False
    at = trained.index(name)
    end = at + len(name)
    return (
        candidate[:at] == trained[:at]
        and candidate[end:] == trained[end:]
        and _GRAPH_NAME.fullmatch(candidate[at:end]) is not None
    )


class SeedProvenance:
    """Answers "did this lab produce these bytes?" (``ours``), training the seed models only
    when the known hashes do not settle it; the verdict is then added to ``manifest``, so the
    next ``lab up`` does not train again for the same bytes."""

    def __init__(
        self,
        known: Iterable[str],
        manifest: Path | None,
        train: Callable[[], Sequence[TrainedModel]] = train_seed_models,
    ) -> None:
        ours, not_ours = recorded(manifest)
        self._known = frozenset(known) | ours
        self._not_ours = not_ours - self._known
        self._manifest = manifest
        self._train = train
        self._trained: list[tuple[TrainedModel, str]] | None = None

    def ours(self, onnx: bytes) -> bool:
        sha = hashlib.sha256(onnx).hexdigest()
        if sha in self._known:
            return True
        if sha in self._not_ours:
            return False
        trained = self._retrained()
        if not trained:
            return False  # no verdict to keep: nothing was compared
        kind = next((t.kind for t, name in trained if same_model(onnx, t.onnx, name)), None)
        if self._manifest is not None:
            record(self._manifest, sha, kind or NOT_OURS)
        return kind is not None

    def _retrained(self) -> list[tuple[TrainedModel, str]]:
        if self._trained is None:
            try:
                self._trained = [(t, graph_name(t.onnx)) for t in self._train()]
            except LabError as exc:  # the lab's extras are missing: nothing is recognised
                log.warning("lab: cannot train the seed models to compare: %s", exc)
                self._trained = []
        return self._trained


def graph_name(onnx: bytes) -> str:
    """The graph name of ONNX bytes this process made itself (parsed with ``onnx``)."""
    try:
        import onnx as onnx_lib
    except ImportError as exc:
        raise LabError(f"{exc.name} not installed: pip install -e '.[lab]'") from None
    return str(onnx_lib.load_from_string(onnx).graph.name)


__all__ = [
    "MANIFEST_NAME",
    "NOT_OURS",
    "SeedProvenance",
    "graph_name",
    "manifest_path",
    "record",
    "recorded",
    "same_model",
]
