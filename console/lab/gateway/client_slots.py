"""Which clients get a ``client`` label of their own: the riskiest, not the first to arrive.

Client ids are self-asserted, so an attacker can mint as many as it likes. Had the label slots
gone first-come (as they once did), 200 throwaway ids sent just before an extraction attack
would hold every slot for the idle time, and the attack would be counted as ``client="other"``:
no series would name it and its alert would never fire. So:

- every client seen is tracked here (up to ``max_tracked``, the least recent dropped) with a
  risk: the highest of its extraction score, its flag rate and its refused share, the two
  rates shrunk towards 0 by a prior of a few requests, so a throwaway id's single flagged
  request does not make it look riskier than a client probing for minutes;
- a free slot goes to whoever asks; when all are held, a client in ``other`` takes the slot of
  the least risky holder once its risk is ``margin`` above that holder's (or the holder has
  been idle for ``idle_s``). The holder's series are removed (``evicted``);
- detection never depends on a slot: the extraction statistic keeps every client, and the
  riskiest client in ``other`` is exported on its own (``riskiest_unlabelled``) so an attack
  hidden there still pages.

Decayed counts (time constant ``tau_s``) keep the rates recent. The least risky holder is
looked up again at most every ``rebalance_s`` (a scan of ``capacity`` holders), so a request
from a client in ``other`` costs a comparison, not a scan.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field

OTHER = "other"
UNKNOWN = "unknown"
RESERVED = frozenset({OTHER, UNKNOWN})
"""Label values of their own: no client may call itself so (it would hide in the bucket)."""
PRIOR_REQUESTS = 10.0
"""Pseudo-requests with nothing flagged or refused, added to every client's rates."""
LIST_REUSE_S = 1.0
"""How long a listing of the clients in ``other`` is reused (see ``unlabelled``)."""
ANSWERED_RATE_FLOOR = 1.0
"""Answered requests/s below which a client's extraction score is not trusted: the same floor
as AMLExtractionSuspected's (its statistic rests on few queries)."""


@dataclass
class ClientRisk:
    """What the gateway knows of one client, for ranking. Counts decay with ``tau_s``."""

    first_seen: float
    last_seen: float
    """Time of its latest request."""
    decayed_at: float
    """Time the counts below were last decayed to."""
    requests: float = 0.0
    answered: float = 0.0
    refused: float = 0.0
    rows: float = 0.0
    flagged: float = 0.0
    extraction: dict[str, float] = field(default_factory=dict)
    """Model -> the client's latest extraction score on it."""

    def decay_to(self, now: float, tau_s: float) -> None:
        elapsed = now - self.decayed_at
        if elapsed > 0:
            keep = math.exp(-elapsed / tau_s)
            self.requests *= keep
            self.answered *= keep
            self.refused *= keep
            self.rows *= keep
            self.flagged *= keep
            self.decayed_at = now

    @property
    def flag_rate(self) -> float:
        return self.flagged / (self.rows + PRIOR_REQUESTS)

    @property
    def refused_share(self) -> float:
        return self.refused / (self.requests + PRIOR_REQUESTS)

    @property
    def risk(self) -> float:
        score = max(self.extraction.values(), default=0.0)
        return max(score, self.flag_rate, self.refused_share)

    def answered_rate(self, tau_s: float) -> float:
        """Answered requests per second, recently (a decayed count over its time constant)."""
        return self.answered / tau_s


@dataclass(frozen=True)
class UnlabelledClient:
    """A client counted as ``other``, as the gateway's per-client state describes it."""

    client: str
    risk: float
    extraction: dict[str, float]
    flag_rate: float
    refused_share: float
    answered_rate: float
    idle_s: float


class ClientSlots:
    """Label slots by risk (see the module docstring)."""

    def __init__(
        self,
        capacity: int = 200,
        idle_s: float = 600.0,
        *,
        max_tracked: int = 100_000,
        margin: float = 0.05,
        tau_s: float = 60.0,
        rebalance_s: float = 1.0,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.idle_s = idle_s
        self.max_tracked = max_tracked
        self.margin = margin
        self.tau_s = tau_s
        self.rebalance_s = rebalance_s
        self.new_clients = 0
        """Client ids seen for the first time (or again after being dropped): a surge of them
        is a Sybil signal of its own."""
        self._tracked: OrderedDict[str, ClientRisk] = OrderedDict()
        self._holders: set[str] = set()
        self._weakest: tuple[str, float] | None = None
        self._weakest_at = -math.inf
        self._listed: tuple[float, int, list[UnlabelledClient]] | None = None

    @property
    def used(self) -> int:
        return len(self._holders)

    @property
    def tracked(self) -> int:
        return len(self._tracked)

    def label(self, client: str, now: float | None = None) -> tuple[str, str | None]:
        """The label of ``client``'s next series and the holder whose series must be dropped
        (if it lost its slot to ``client``)."""
        now = time.monotonic() if now is None else now
        state = self._touch(client, now)
        if client in self._holders:
            return client, None
        if len(self._holders) < self.capacity:
            self._holders.add(client)
            return client, None
        weakest = self._weakest_holder(now)
        if weakest is None:
            return OTHER, None
        holder, holder_risk = weakest
        idle = now - self._tracked[holder].last_seen >= self.idle_s
        if not idle and state.risk < holder_risk + self.margin:
            return OTHER, None
        self._holders.discard(holder)
        self._holders.add(client)
        self._weakest = None  # look again: the next weakest may be another
        self._listed = None  # who is in `other` changed
        return client, holder

    def observe(
        self,
        client: str,
        *,
        outcome: str,
        rows: int = 0,
        flagged_rows: int = 0,
        model: str | None = None,
        extraction: float | None = None,
        now: float | None = None,
    ) -> None:
        """Count one answered (or refused) request of ``client``."""
        now = time.monotonic() if now is None else now
        state = self._touch(client, now)
        state.requests += 1.0
        if outcome == "ok":
            state.answered += 1.0
        elif outcome in ("blocked", "throttled"):
            state.refused += 1.0
        state.rows += rows
        state.flagged += flagged_rows
        if model is not None and extraction is not None:
            state.extraction[model] = extraction

    def is_labelled(self, client: str) -> bool:
        return client in self._holders

    def unlabelled(self, limit: int = 50, now: float | None = None) -> list[UnlabelledClient]:
        """Tracked clients without a slot, riskiest first (at most ``limit``). A scan of every
        tracked client, on the gateway's event loop: its answer is reused for
        ``LIST_REUSE_S`` (or until a slot changes hands), so consoles refreshing every few
        seconds cost one scan a second."""
        now = time.monotonic() if now is None else now
        cached = self._listed
        if cached is not None and 0 <= now - cached[0] < LIST_REUSE_S and limit <= cached[1]:
            return cached[2][:limit]
        found = heapq.nsmallest(
            limit,
            (
                (-state.risk, name, state)
                for name, state in self._tracked.items()
                if name not in self._holders and now - state.last_seen < self.idle_s
            ),
            key=lambda item: (item[0], item[1]),
        )
        listed = [self._describe(name, state, now) for _, name, state in found]
        self._listed = (now, limit, listed)
        return listed

    def riskiest_unlabelled(self, model: str, now: float | None = None) -> UnlabelledClient | None:
        """The client in ``other`` with the highest extraction score on ``model`` among those
        answered at least ``ANSWERED_RATE_FLOOR`` per second: who an extraction alert on the
        bucket should name. A scan of the tracked clients: call it per scrape, not per request."""
        now = time.monotonic() if now is None else now
        best: tuple[float, str, ClientRisk] | None = None
        for name, state in self._tracked.items():
            if name in self._holders or now - state.last_seen >= self.idle_s:
                continue
            score = state.extraction.get(model)
            if score is None or (best is not None and score <= best[0]):
                continue
            state.decay_to(now, self.tau_s)
            if state.answered_rate(self.tau_s) >= ANSWERED_RATE_FLOOR:
                best = (score, name, state)
        return None if best is None else self._describe(best[1], best[2], now)

    def _touch(self, client: str, now: float) -> ClientRisk:
        state = self._tracked.get(client)
        if state is None:
            self.new_clients += 1
            state = ClientRisk(first_seen=now, last_seen=now, decayed_at=now)
            self._tracked[client] = state
            if len(self._tracked) > self.max_tracked:
                self._drop_least_recent()
        else:
            state.decay_to(now, self.tau_s)
            state.last_seen = now
            self._tracked.move_to_end(client)
        return state

    def _drop_least_recent(self) -> None:
        for name in self._tracked:
            if name not in self._holders:
                del self._tracked[name]
                return
        # Every tracked client holds a slot (max_tracked <= capacity): drop the oldest anyway.
        name = next(iter(self._tracked))
        del self._tracked[name]
        self._holders.discard(name)
        self._weakest = None

    def _weakest_holder(self, now: float) -> tuple[str, float] | None:
        if self._weakest is None or now - self._weakest_at >= self.rebalance_s:
            self._weakest_at = now
            self._weakest = None
            for name in self._holders:
                state = self._tracked[name]
                idle = now - state.last_seen >= self.idle_s
                risk = -1.0 if idle else state.risk  # an idle holder gives its slot up first
                if self._weakest is None or risk < self._weakest[1]:
                    self._weakest = (name, risk)
        return self._weakest

    def _describe(self, name: str, state: ClientRisk, now: float) -> UnlabelledClient:
        return UnlabelledClient(
            client=name,
            risk=round(state.risk, 6),
            extraction={m: round(v, 6) for m, v in state.extraction.items()},
            flag_rate=round(state.flag_rate, 6),
            refused_share=round(state.refused_share, 6),
            answered_rate=round(state.answered_rate(self.tau_s), 3),
            idle_s=round(max(0.0, now - state.last_seen), 3),
        )
