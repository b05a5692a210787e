"""A synthetic ``/metrics`` of N clients for ``bench_tui_scale.py``: what the gateway would
export with N clients of one model, one of them a slow attacker."""

from __future__ import annotations

import contextlib
import functools
import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ATTACKER = "slow-attacker"
ATTACKER_RATE, ATTACKER_SCORE = 0.1, 0.9
"""Below the slowest benign client (0.2/s), so never in a top-K by rate; far over the
extraction alert's 0.4."""


class SyntheticExporter:
    """``/metrics`` of ``clients`` clients of model digits, as the gateway exports them: an
    answered-requests counter per client growing at 0.2-5.2/s, for every twentieth client also
    a throttled one (a tenth of its requests), an extraction score (0-0.14: no alert), a
    flagged-inputs counter for every tenth client; and the last of the ``clients`` is the slow
    attacker. Prometheus asks for gzip; it gets gzip."""

    def __init__(self) -> None:
        self.clients = 0
        self.started = time.monotonic()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = exporter.body()
                zipped = "gzip" in self.headers.get("Accept-Encoding", "")
                if zipped:
                    body = gzip.compress(body, compresslevel=1)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                if zipped:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)  # a scrape that timed out hung up

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def body(self) -> bytes:
        t = time.monotonic() - self.started
        requests, scores, flagged = _families(self.clients)
        lines = ["# TYPE aml_requests_total counter"]
        lines += [f"{series} {rate * t:.2f}" for series, rate in requests]
        lines += [scores, "# TYPE aml_flagged_total counter"]
        lines += [f"{series} {rate * t:.2f}" for series, rate in flagged]
        return ("\n".join(lines) + "\n").encode()

    def __enter__(self) -> SyntheticExporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@functools.lru_cache(maxsize=2)
def _families(n: int) -> tuple[list[tuple[str, float]], str, list[tuple[str, float]]]:
    """What does not change between scrapes: each counter series with its rate, and the
    (constant) score gauges as one block. ``n`` clients: ``n - 1`` benign and the attacker."""
    clients = [*(f"c{i:06d}" for i in range(n - 1)), ATTACKER]
    rates = [0.2 + (i * 7919 % 1000) / 200 for i in range(n - 1)] + [ATTACKER_RATE]
    scores = [(i * 104729 % 1000) * 0.00014 for i in range(n - 1)] + [ATTACKER_SCORE]
    requests, flagged = [], []
    for i, (client, rate) in enumerate(zip(clients, rates, strict=True)):
        labels = f'model="digits",version="2",client="{client}"'
        refused = client != ATTACKER and i % 20 == 5
        requests.append(
            (f'aml_requests_total{{{labels},outcome="ok"}}', rate * (0.9 if refused else 1))
        )
        if refused:
            requests.append((f'aml_requests_total{{{labels},outcome="throttled"}}', rate * 0.1))
        if client != ATTACKER and i % 10 == 0:
            flagged.append((f'aml_flagged_total{{{labels},reason="squeeze"}}', rate * 0.02))
    gauges = "\n".join(
        ["# TYPE aml_client_extraction_score gauge"]
        + [
            f'aml_client_extraction_score{{model="digits",client="{client}"}} {score:.4f}'
            for client, score in zip(clients, scores, strict=True)
        ]
    )
    return requests, gauges, flagged
