"""Signature verification (OpenSSF model-signing, EC P-256, offline) against the sha256 check
of the same bytes: what the gateway and replay add to loading a version.

    python benchmarks/bench_signing.py [--runs 20] [--big-mib 64]

Three artifacts: the lab's digits models (ONNX: the logistic regression ~4 kB, the MLP
~20 kB, trained here) and
``--big-mib`` MiB of random bytes (a large model's size). For each, in one process:
  * sha256:  ``hashlib.sha256`` of the bytes (the ``onnx_sha256`` tag check; the baseline);
  * verify:  ``console.model_signing.verify``: the bytes written to a private temp dir,
             hashed by model-signing, the bundle's ECDSA signature checked, the dir removed;
  * sign:    ``console.model_signing.sign`` (what registering adds), for reference.
The first call's library import (~0.6 s, once per process) is measured apart. Medians and the
ratios verify/sha256 and sign/sha256 are printed; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _median_ms(call: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def _digits_onnx() -> dict[str, bytes]:
    from console.lab.seed_train import train_seed_models

    return {f"digits {t.kind} ONNX": t.onnx for t in train_seed_models()}


def run(runs: int = 20, big_mib: int = 64) -> dict[str, dict[str, float]]:
    """Median ms of sha256, verify and sign per artifact, and the ratios to sha256."""
    from console import model_signing

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-signing-") as tmp:
        key = Path(tmp) / "keys" / "bench.key"
        public = model_signing.generate_key_pair(key)
        started = time.perf_counter()
        model_signing.sign(b"warm-up", key)  # imports model_signing and its dependencies
        results["first sign (library import included)"] = {
            "ms": (time.perf_counter() - started) * 1000
        }
        artifacts = {
            **_digits_onnx(),
            f"{big_mib} MiB file": os.urandom(big_mib * 1024 * 1024),
        }
        for label, onnx in artifacts.items():
            times = runs if len(onnx) < 1024 * 1024 else max(3, runs // 4)
            signature = model_signing.sign(onnx, key)
            model_signing.verify("bench", "1", onnx, signature, [public])
            sha_ms = _median_ms(lambda data=onnx: hashlib.sha256(data).hexdigest(), times)
            verify_ms = _median_ms(
                lambda data=onnx, sig=signature: model_signing.verify(
                    "bench", "1", data, sig, [public]
                ),
                times,
            )
            sign_ms = _median_ms(lambda data=onnx: model_signing.sign(data, key), times)
            results[label] = {
                "bytes": len(onnx),
                "sha256_ms": round(sha_ms, 4),
                "verify_ms": round(verify_ms, 3),
                "sign_ms": round(sign_ms, 3),
                "verify_vs_sha256": round(verify_ms / sha_ms, 1),
                "sign_vs_sha256": round(sign_ms / sha_ms, 1),
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--big-mib", type=int, default=64)
    args = parser.parse_args()
    results = run(args.runs, args.big_mib)
    print(
        f"{'artifact':<20} {'bytes':>10} {'sha256 ms':>10} {'verify ms':>10} "
        f"{'sign ms':>9} {'verify/sha':>11} {'sign/sha':>9}"
    )
    for label, row in results.items():
        if "bytes" not in row:
            print(f"{label}: {row['ms']:.0f} ms")
            continue
        print(
            f"{label:<20} {row['bytes']:>10.0f} {row['sha256_ms']:>10.3f} "
            f"{row['verify_ms']:>10.3f} {row['sign_ms']:>9.3f} "
            f"{row['verify_vs_sha256']:>10.1f}x {row['sign_vs_sha256']:>8.1f}x"
        )


if __name__ == "__main__":
    main()
