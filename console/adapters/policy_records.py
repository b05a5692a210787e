"""What the policy store holds, without the store: client ids and their check, blocks, budgets
and output hardenings (pydantic models). Views and screens that only show policies import this
module, not ``policy`` (which loads the Redis client, a tenth of a second at start-up)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, model_validator

from console.errors import ParameterError

CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
BLOCK_ID = re.compile(r"^blk-[0-9a-f]{12}$")
HARDENING_ID = re.compile(r"^hrd-[0-9a-f]{12}$")
BudgetMode = Literal["enforce", "shadow"]
OutputMode = Literal["label-only", "top1", "rounded"]
"""What a hardened client's answers keep: the predicted class alone (ART's ClassLabels), the top
class with its probability, or every probability rounded to ``decimals`` (ART's Rounded)."""


def check_client_id(client: str) -> str:
    if not isinstance(client, str) or not CLIENT_ID.fullmatch(client):
        raise ParameterError(
            f"client id {client[:40]!r} is not acceptable: 1-128 characters of letters, digits "
            "and . _ : @ -, starting with a letter or digit"
            if isinstance(client, str)
            else "client id must be a string"
        )
    return client


def _client_id_value(value: str) -> str:
    try:
        return check_client_id(value)
    except ParameterError as exc:  # pydantic reports ValueErrors with their field path
        raise ValueError(str(exc)) from None


ClientId = Annotated[str, AfterValidator(_client_id_value)]
"""A client id checked before it is used in a key, a URL or a screen."""


class Block(BaseModel):
    client: str
    reason: str
    operator: str
    run_id: str
    created_at: datetime
    expires_at: datetime
    id: str = ""
    """``blk-<12 hex>``, derived from client, run and creation time: what a gateway may show
    the blocked client (the reason is the operator's, and stays inside). Blocks written before
    ids existed get the same derived id on every read."""

    @model_validator(mode="after")
    def _derived_id(self) -> Block:
        if not BLOCK_ID.fullmatch(self.id):
            seed = f"{self.client}|{self.run_id}|{self.created_at.isoformat()}"
            self.id = "blk-" + hashlib.sha256(seed.encode()).hexdigest()[:12]
        return self


class Budget(BaseModel):
    client: str
    qpm: int
    operator: str
    run_id: str
    set_at: datetime
    previous_qpm: int | None = None
    """The budget before the console first changed it (None: the gateway default)."""
    mode: BudgetMode = "enforce"
    """``shadow``: refuses nothing; the enforcement points count the requests it would have
    refused. Records written before modes existed are enforced."""
    enforced_qpm: int | None = None
    """Shadow budgets only: the enforced budget that stays in force while this one is tried
    (None: the gateway default)."""

    @property
    def shadow(self) -> bool:
        return self.mode == "shadow"

    @property
    def enforced(self) -> int | None:
        """The queries per minute this record enforces (None: the gateway default)."""
        return self.enforced_qpm if self.shadow else self.qpm

    @property
    def label(self) -> str:
        """``20 qpm`` or ``shadow 20 qpm``: how a screen names it."""
        return f"shadow {self.qpm} qpm" if self.shadow else f"{self.qpm} qpm"


OUTPUT_HEADER = re.compile(r"^(label-only|top1)$|^rounded;decimals=([0-6])$")


def parse_output(value: str) -> tuple[OutputMode, int] | None:
    """An ``X-AML-Output`` value -> (mode, decimals); None when empty (full answers). A value
    that is not one of ``Hardening.header``'s reads as ``label-only``: a hardening the upstream
    cannot read reduces the answer the most, never leaves it whole."""
    value = value.strip()
    if not value:
        return None
    match = OUTPUT_HEADER.fullmatch(value)
    if match is None:
        return "label-only", 0
    if match.group(2) is not None:
        return "rounded", int(match.group(2))
    return ("top1" if value == "top1" else "label-only"), 0


class Hardening(BaseModel):
    client: str
    mode: OutputMode
    decimals: int = 2
    """``rounded`` only: decimals kept in each probability."""
    operator: str
    run_id: str
    created_at: datetime
    expires_at: datetime
    id: str = ""
    """``hrd-<12 hex>``, derived like a block's id."""

    @model_validator(mode="after")
    def _derived_id(self) -> Hardening:
        if not HARDENING_ID.fullmatch(self.id):
            seed = f"{self.client}|{self.run_id}|{self.created_at.isoformat()}"
            self.id = "hrd-" + hashlib.sha256(seed.encode()).hexdigest()[:12]
        return self

    @property
    def header(self) -> str:
        """The ``X-AML-Output`` value: ``label-only``, ``top1`` or ``rounded;decimals=2``."""
        return f"rounded;decimals={self.decimals}" if self.mode == "rounded" else self.mode

    @property
    def label(self) -> str:
        """``label-only`` or ``rounded to 2 decimals``: how a screen names it."""
        return f"rounded to {self.decimals} decimals" if self.mode == "rounded" else self.mode


@dataclass(frozen=True)
class ShadowTotals:
    """What a shadow budget would have done since it was set, over every enforcement point."""

    seen: int
    would_refuse: int

    @property
    def share(self) -> float | None:
        return self.would_refuse / self.seen if self.seen else None

    def text(self) -> str:
        """``37% (1,204 of 3,250)``."""
        share = self.share
        percent = "-" if share is None else f"{share:.0%}"
        return f"{percent} ({self.would_refuse:,} of {self.seen:,})"
