"""Attackers against the lab gateway: extraction, evasion (ART), flood, poisoning.

Each is an ``async def run_<kind>(settings, client, ...)`` returning a typed report with
``as_dict()``, seeded, bounded (requests and time) and loopback-only, listed by kind in
``registry.py`` and run, recorded in ``lab status``, by ``launch.py``. This package imports
nothing heavy: the registry imports a kind's module when it is used.
"""
