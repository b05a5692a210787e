"""Overhead of a block-client run end to end against one raw Redis SET of the same key.

    python benchmarks/bench_block_client.py [--runs 50]

Starts a real Redis with the project's launcher (own run dir and port), then in the same
process measures:
  * raw:    one ``SET <block key> <json> PX <ms>`` with redis-py (the floor: what the action
            itself must send),
  * engine: ``RunbookEngine.plan`` + ``run`` of the shipped block-client runbook: parameter
            checks, plan (reads the current block), lease, re-check, 4 fsynced audit records,
            run-state saves, apply, lease release.
Both medians and their ratio are printed; the ratio is what to compare across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

from console.config import Settings
from console.lab import services
from console.runbooks.engine import RunbookEngine
from console.runbooks.loader import find_runbook

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(run_dir: Path, port: int) -> Settings:
    return Settings(
        run_dir=run_dir,
        operator="bench",
        runbook_dirs=[REPO / "runbooks"],
        redis={"url": f"redis://127.0.0.1:{port}/0"},  # type: ignore[arg-type]
        audit={"hmac_key": "bench-key-not-a-secret"},  # type: ignore[arg-type]
    )


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def run(runs: int = 50) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="aml-bench-") as tmp:
        settings = _settings(Path(tmp), _free_port())
        services.up(settings, ["redis"])
        try:
            client = redis.Redis.from_url(settings.redis.url)
            value = json.dumps({"client": "x", "reason": "bench", "expires_at": "later"})
            raw: list[float] = []
            for i in range(runs * 4):
                started = time.perf_counter()
                client.set(f"aml:policy:block:raw-{i}", value, px=1_800_000)
                raw.append(time.perf_counter() - started)

            engine = RunbookEngine(settings)
            loaded = find_runbook("block-client", settings.runbook_dirs)

            async def one(i: int) -> None:
                plan = await engine.plan(
                    loaded, {"client": f"bench-{i}", "ttl": "30m", "reason": "bench"}
                )
                state = await engine.run(plan, confirmed=True)
                assert state.status == "succeeded", state.error

            end_to_end: list[float] = []
            for i in range(runs):
                started = time.perf_counter()
                asyncio.run(one(i))
                end_to_end.append(time.perf_counter() - started)
        finally:
            services.down(settings, ["redis"])
    raw_ms, e2e_ms = _median_ms(raw), _median_ms(end_to_end)
    return {
        "raw_set_median_ms": round(raw_ms, 3),
        "block_client_median_ms": round(e2e_ms, 3),
        "ratio": round(e2e_ms / raw_ms, 1),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    result = run(parser.parse_args().runs)
    sys.stdout.write(
        f"raw SET median          {result['raw_set_median_ms']:8.3f} ms\n"
        f"block-client run median {result['block_client_median_ms']:8.3f} ms "
        f"(plan, lease, re-check, 4 fsynced audit records, apply)\n"
        f"ratio                   {result['ratio']:8.1f}x\n"
    )


if __name__ == "__main__":
    main()
