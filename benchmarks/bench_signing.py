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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--big-mib", type=int, default=64)
    args = parser.parse_args()

    from console import model_signing

    with tempfile.TemporaryDirectory(prefix="bench-signing-") as tmp:
        key = Path(tmp) / "keys" / "bench.key"
        public = model_signing.generate_key_pair(key)
        started = time.perf_counter()
        model_signing.sign(b"warm-up", key)  # imports model_signing and its dependencies
        import_s = time.perf_counter() - started
        print(f"first sign (library import included): {import_s * 1000:.0f} ms")
        artifacts = {
            **_digits_onnx(),
            f"{args.big_mib} MiB file": os.urandom(args.big_mib * 1024 * 1024),
        }
        print(
            f"{'artifact':<20} {'bytes':>10} {'sha256 ms':>10} {'verify ms':>10} "
            f"{'sign ms':>9} {'verify/sha':>11} {'sign/sha':>9}"
        )
        for label, onnx in artifacts.items():
            runs = args.runs if len(onnx) < 1024 * 1024 else max(3, args.runs // 4)
            signature = model_signing.sign(onnx, key)
            model_signing.verify("bench", "1", onnx, signature, [public])
            sha_ms = _median_ms(lambda data=onnx: hashlib.sha256(data).hexdigest(), runs)
            verify_ms = _median_ms(
                lambda data=onnx, sig=signature: model_signing.verify(
                    "bench", "1", data, sig, [public]
                ),
                runs,
            )
            sign_ms = _median_ms(lambda data=onnx: model_signing.sign(data, key), runs)
            print(
                f"{label:<20} {len(onnx):>10} {sha_ms:>10.3f} {verify_ms:>10.3f} "
                f"{sign_ms:>9.3f} {verify_ms / sha_ms:>10.1f}x {sign_ms / sha_ms:>8.1f}x"
            )


if __name__ == "__main__":
    main()
