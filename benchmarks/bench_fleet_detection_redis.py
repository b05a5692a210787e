"""The extraction statistic's state shared in Redis across gateway replicas, the option
``bench_fleet_detection.py`` weighs against state kept in each replica's process: per query a
GET of the client's state from a real redis-server, the measurement in process, a SET back;
against the same measurement with the state in process, in the same run.

    python3 benchmarks/bench_fleet_detection_redis.py [--quick]

No lab needed: a redis-server of its own on a free port, stopped on exit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import numpy as np
from bench_fleet_detection import benign_rows

from console.detectors.extraction import ExtractionMonitor


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shared_in_redis(quick: bool) -> dict[str, Any]:
    import redis

    port, workdir = _free_port(), tempfile.mkdtemp(prefix="bench-fleet-redis-")
    options = f"--port {port} --bind 127.0.0.1 --appendonly no --dir {workdir}".split()
    server = subprocess.Popen(["redis-server", *options, "--save", ""], stdout=subprocess.DEVNULL)
    try:
        db = redis.Redis(port=port)
        for _ in range(100):
            try:
                db.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        clients, per = (50, 100) if quick else (200, 200)
        rows = benign_rows(np.random.default_rng(3), clients * per)
        in_process = ExtractionMonitor(max_clients=10**9)
        start = time.perf_counter()
        for i, row in enumerate(rows):
            in_process.observe(f"client-{i % clients}", row[None, :])
        local_s = time.perf_counter() - start
        shared = ExtractionMonitor(max_clients=10**9)
        base = db.info("memory")["used_memory"]
        start = time.perf_counter()
        for i, row in enumerate(rows):
            name = f"client-{i % clients}"
            db.get(name)  # the replica loads the shared state ...
            shared.observe(name, row[None, :])
            state = shared._clients[name]  # ... and writes it back
            db.set(name, state.rows.tobytes() + state.distances.tobytes())
        shared_s = time.perf_counter() - start
        return {
            "queries": len(rows),
            "in_process_queries_per_s": round(len(rows) / local_s),
            "redis_shared_queries_per_s": round(len(rows) / shared_s),
            "ratio_redis_shared_vs_in_process": round(local_s / shared_s, 3),
            "redis_bytes_per_full_client": round(
                (db.info("memory")["used_memory"] - base) / clients
            ),
        }
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(shared_in_redis(parser.parse_args().quick), indent=2))


if __name__ == "__main__":
    main()
