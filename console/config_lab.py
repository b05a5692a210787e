"""The lab's own config sections (what ``lab up`` starts); a production context leaves them
out."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from console.config_fields import HttpUrl, Section


class GatewaySection(Section):
    """The lab's guarded inference gateway (Open Inference / V2 protocol). It serves
    ``models.served`` and scores with ``[detectors]``."""

    url: HttpUrl = "http://127.0.0.1:18080"
    alias_poll_s: float = Field(default=2.0, gt=0)
    """How often the gateway re-reads the aliases (a rollback applies within this)."""
    policy_cache_s: float = Field(default=0.5, ge=0, le=1.0)
    """Policy (block, budget) cache; changes also arrive by pub/sub. At most 1 s."""
    redis_failure_mode: Literal["open", "closed"] = "open"
    """When Redis is down: serve (open) or refuse with 503 (closed)."""
    policy_decided_upstream: bool = False
    """True when every request comes through a front that asked the policy endpoint first (the
    lab's NGINX, ``lab up --replicas``): the gateway then decides nothing again, so a budget
    is counted once. Set by the launcher for the replicas."""
    sample_fraction: float = Field(default=0.01, ge=0, le=1)
    """Fraction of unflagged requests sampled too."""
    hash_only: bool = False
    """Store only the sha256 of inputs, never the inputs (personal data)."""
    retention_days: int = Field(default=7, ge=1)
    """Sample-store partitions older than this are deleted."""
    default_qpm: int | None = None
    """Budget for clients without one in the policy store (None: unlimited)."""
    pseudonym_key: SecretStr | None = None
    """Secret of the HMAC that turns a bearer API key into a client id (``key-<16 hex>``).
    Prefer ``CONSOLE_GATEWAY__PSEUDONYM_KEY`` or ``pseudonym_key_file``."""
    pseudonym_key_file: Path | None = None
    """Default ``<run_dir>/secrets/pseudonym.key``, made (0600) by the first gateway to start."""
    client_labels: int = Field(default=200, ge=1, le=100_000)
    """Clients with a ``client`` label of their own; the slots go to the riskiest clients,
    the others are counted as ``other``."""
    client_label_idle_s: float = Field(default=600.0, gt=0)
    """A client idle this long gives its slot up to anyone."""
    body_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """A request body must arrive within this (else 408): a client that sends its headers and
    then trickles or never sends its body does not hold the gateway."""
    max_pending_bodies: int = Field(default=256, ge=1)
    """Request bodies read at once; beyond that a request is refused at once with 503."""


class TrafficSection(Section):
    """Benign clients ``lab up`` runs against the gateway (service ``traffic``)."""

    url: HttpUrl = "http://127.0.0.1:18081"
    """Where the generator serves ``/metrics``: what the benign clients saw (requests by
    outcome, latency), scraped beside the gateway's own view."""
    clients: int = Field(default=6, ge=1, le=200)
    rate: float = Field(default=1.0, gt=0, le=100)
    """Mean requests per second of each client (spread log-normally between clients)."""
    seed: int = 7
    duration_s: float = Field(default=86_400.0, gt=0)
    """The generator stops by itself after this; ``lab up`` starts it again."""
    model: str | None = None
    """Model the clients query (default: the gateway's first)."""


class LabSection(Section):
    services: list[str] = Field(
        default_factory=lambda: [
            "redis",
            "mlflow",
            "alertmanager",
            "prometheus",
            "gateway",
            "traffic",
        ]
    )
    """Services ``lab up`` starts when ``--services`` is not given."""
    seed_model: str = "digits"
    """Model the lab registers (two versions, aliases champion and previous)."""
    mlflow_start_timeout_s: float = 90.0
    policy_port: int = Field(default=18082, ge=1, le=65535)
    """``lab up --replicas N``: port of the policy endpoint (``policy serve``) NGINX asks."""
    replica_base_port: int | None = Field(default=None, ge=1, le=65535)
    """``lab up --replicas N``: gateway-1..N listen on this port and the N-1 after it. None:
    the first N consecutive free ports from the gateway's port + 20, chosen by ``lab up`` and
    kept in ``<run_dir>/lab/replicas.json`` until ``lab down``."""
