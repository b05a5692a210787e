"""Replay: "is this really an attack, and does rolling back help?"

Samples from the sample store (by client, model, window, detector score, or an alert's labels)
run through several registry versions, locally with onnxruntime on sha256-verified ONNX
artifacts or on a remote Open Inference (V2) server, batched; per sample the prediction,
confidence and feature-squeezing score of each version and whether they flip; overall flip
rates, adversarial success rate per version, confidence shift and a verdict line.

Modules: ``model`` (typed values and events), ``selection`` (store filter, alert labels),
``versions`` (aliases/numbers -> registry versions), ``runners`` (local, remote), ``engine``
(the batch loop), ``scoring`` (figures, verdict), ``service`` (``replay``: the event stream),
``export`` (rows, pandas/Parquet). Nothing here imports Textual.
"""

from console.replay.model import (
    BatchDone,
    ReplayEvent,
    ReplayFinished,
    ReplayRequest,
    ReplayResult,
    ReplayStarted,
    ReplaySummary,
    SampleOutcome,
    SelectedSamples,
    VersionRef,
    VersionRun,
    VersionSummary,
)
from console.replay.service import replay, replay_result

__all__ = [
    "BatchDone",
    "ReplayEvent",
    "ReplayFinished",
    "ReplayRequest",
    "ReplayResult",
    "ReplayStarted",
    "ReplaySummary",
    "SampleOutcome",
    "SelectedSamples",
    "VersionRef",
    "VersionRun",
    "VersionSummary",
    "replay",
    "replay_result",
]
