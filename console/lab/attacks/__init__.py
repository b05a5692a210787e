"""Attackers against the lab gateway: extraction, evasion (ART), flood, poisoning.

Each is an ``async def run_<kind>(settings, client, ...)`` returning a typed report with
``as_dict()``, seeded, bounded (requests and time) and loopback-only. Import the kind's module
(``console.lab.attacks.extraction``...): this package imports nothing heavy.
"""

KINDS = ("extraction", "evasion", "flood", "poisoning")

__all__ = ["KINDS"]
