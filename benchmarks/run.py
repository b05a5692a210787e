"""Run every benchmark and print its figures: ``python benchmarks/run.py``.

Each benchmark measures its own baseline in the same run (a raw Redis SET, ``sha256sum``,
onnxruntime on the same rows, one request's round trip, ``aml-console --help``, ``python3 -c
pass``, a view's slowest query alone, a plain run of the runbook an approval gates), so the
ratios are comparable across noisy machines; the absolute times are not.
The gateway and TUI benchmarks use the lab of ``configs/lab.toml`` (started if it is not);
``bench_tui.py`` also starts a Prometheus and a VictoriaMetrics (with vmalert) of its own for
its 100 to 100,000-client stages (half an hour to an hour), and leaves the lab up for
``bench_startup.py``.
``bench_eval.py`` evaluates a fresh version (ART against onnxruntime on the same batches) and
``bench_signing.py`` times signature verification against sha256 of the same bytes.
``bench_detection.py`` runs on its own: it takes ten minutes of benign traffic;
``bench_sybil.py`` too: the same attack alone and behind 200 and 2,000 throwaway ids (minutes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_approval  # noqa: E402
import bench_audit_verify  # noqa: E402
import bench_audit_witness  # noqa: E402
import bench_block_client  # noqa: E402
import bench_enforcement  # noqa: E402
import bench_eval  # noqa: E402
import bench_gateway  # noqa: E402
import bench_gateway_vs_mlserver  # noqa: E402
import bench_policy_endpoint  # noqa: E402
import bench_replay  # noqa: E402
import bench_signing  # noqa: E402
import bench_startup  # noqa: E402
import bench_tui  # noqa: E402

LAB_CONFIG = Path("configs/lab.toml")


def main() -> None:
    results = {
        "block_client_vs_raw_set": bench_block_client.run(),
        "approval_round_trip_vs_plain_run": bench_approval.run(30, poll_only=False),
        "audit_verify_vs_sha256sum": bench_audit_verify.run(),
        "audit_append_with_vs_without_witness": bench_audit_witness.run(),
        "gateway_vs_onnxruntime": bench_gateway.run(LAB_CONFIG),
        "enforcement_lag": bench_enforcement.run(LAB_CONFIG),
        "nginx_auth_request_vs_plain": bench_policy_endpoint.run(LAB_CONFIG),
        "gateway_vs_mlserver": bench_gateway_vs_mlserver.run(LAB_CONFIG),
        "tui_vs_baselines": bench_tui.run(LAB_CONFIG, keep_lab=True),  # startup_vs_python needs it
        "replay_vs_onnxruntime": bench_replay.run(LAB_CONFIG),
        "eval_vs_onnxruntime": bench_eval.run(LAB_CONFIG, 200, 2000),
        "signature_verify_vs_sha256": bench_signing.run(),
        "startup_vs_python": bench_startup.run(LAB_CONFIG),
    }
    sys.stdout.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
